from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Tensor(_message.Message):
    __slots__ = ("type", "values", "labels")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    type: str
    values: bytes
    labels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, type: _Optional[str] = ..., values: _Optional[bytes] = ..., labels: _Optional[_Iterable[str]] = ...) -> None: ...

class RankRequest(_message.Message):
    __slots__ = ("schema", "rank_profile", "query", "hits", "offset", "doc_ids", "all_scores", "nearest_neighbor")
    class QueryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Tensor
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...
    class NearestNeighborEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    RANK_PROFILE_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DOC_IDS_FIELD_NUMBER: _ClassVar[int]
    ALL_SCORES_FIELD_NUMBER: _ClassVar[int]
    NEAREST_NEIGHBOR_FIELD_NUMBER: _ClassVar[int]
    schema: str
    rank_profile: str
    query: _containers.MessageMap[str, Tensor]
    hits: int
    offset: int
    doc_ids: _containers.RepeatedScalarFieldContainer[str]
    all_scores: bool
    nearest_neighbor: _containers.ScalarMap[str, str]
    def __init__(self, schema: _Optional[str] = ..., rank_profile: _Optional[str] = ..., query: _Optional[_Mapping[str, Tensor]] = ..., hits: _Optional[int] = ..., offset: _Optional[int] = ..., doc_ids: _Optional[_Iterable[str]] = ..., all_scores: _Optional[bool] = ..., nearest_neighbor: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("id", "relevance", "match_features")
    class MatchFeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Tensor
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    RELEVANCE_FIELD_NUMBER: _ClassVar[int]
    MATCH_FEATURES_FIELD_NUMBER: _ClassVar[int]
    id: str
    relevance: float
    match_features: _containers.MessageMap[str, Tensor]
    def __init__(self, id: _Optional[str] = ..., relevance: _Optional[float] = ..., match_features: _Optional[_Mapping[str, Tensor]] = ...) -> None: ...

class Coverage(_message.Message):
    __slots__ = ("documents", "scored", "full")
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    SCORED_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    documents: int
    scored: int
    full: bool
    def __init__(self, documents: _Optional[int] = ..., scored: _Optional[int] = ..., full: _Optional[bool] = ...) -> None: ...

class RankResponse(_message.Message):
    __slots__ = ("hits", "scored_ids", "scores", "coverage", "scoring_ms")
    HITS_FIELD_NUMBER: _ClassVar[int]
    SCORED_IDS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    SCORING_MS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    scored_ids: _containers.RepeatedScalarFieldContainer[str]
    scores: _containers.RepeatedScalarFieldContainer[float]
    coverage: Coverage
    scoring_ms: float
    def __init__(self, hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., scored_ids: _Optional[_Iterable[str]] = ..., scores: _Optional[_Iterable[float]] = ..., coverage: _Optional[_Union[Coverage, _Mapping]] = ..., scoring_ms: _Optional[float] = ...) -> None: ...

class FeedOperation(_message.Message):
    __slots__ = ("request_id", "json", "put", "remove")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    PUT_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    json: str
    put: Put
    remove: Remove
    def __init__(self, request_id: _Optional[str] = ..., json: _Optional[str] = ..., put: _Optional[_Union[Put, _Mapping]] = ..., remove: _Optional[_Union[Remove, _Mapping]] = ...) -> None: ...

class Put(_message.Message):
    __slots__ = ("id", "fields")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Tensor
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    fields: _containers.MessageMap[str, Tensor]
    def __init__(self, id: _Optional[str] = ..., fields: _Optional[_Mapping[str, Tensor]] = ...) -> None: ...

class Remove(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class FeedResult(_message.Message):
    __slots__ = ("request_id", "ok", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    ok: bool
    error: str
    def __init__(self, request_id: _Optional[str] = ..., ok: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class FeedBatch(_message.Message):
    __slots__ = ("operations",)
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    operations: _containers.RepeatedCompositeFieldContainer[FeedOperation]
    def __init__(self, operations: _Optional[_Iterable[_Union[FeedOperation, _Mapping]]] = ...) -> None: ...

class FeedBatchResult(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[FeedResult]
    def __init__(self, results: _Optional[_Iterable[_Union[FeedResult, _Mapping]]] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("found", "fields")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Tensor
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...
    FOUND_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    found: bool
    fields: _containers.MessageMap[str, Tensor]
    def __init__(self, found: _Optional[bool] = ..., fields: _Optional[_Mapping[str, Tensor]] = ...) -> None: ...

class GetApplicationRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FieldInfo(_message.Message):
    __slots__ = ("name", "type", "attribute")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    attribute: bool
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., attribute: _Optional[bool] = ...) -> None: ...

class QueryInputInfo(_message.Message):
    __slots__ = ("name", "type", "has_default")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    HAS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    has_default: bool
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., has_default: _Optional[bool] = ...) -> None: ...

class RankProfileInfo(_message.Message):
    __slots__ = ("name", "inputs", "match_features", "rerank_count", "has_second_phase", "models")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    MATCH_FEATURES_FIELD_NUMBER: _ClassVar[int]
    RERANK_COUNT_FIELD_NUMBER: _ClassVar[int]
    HAS_SECOND_PHASE_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    inputs: _containers.RepeatedCompositeFieldContainer[QueryInputInfo]
    match_features: _containers.RepeatedScalarFieldContainer[str]
    rerank_count: int
    has_second_phase: bool
    models: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[QueryInputInfo, _Mapping]]] = ..., match_features: _Optional[_Iterable[str]] = ..., rerank_count: _Optional[int] = ..., has_second_phase: _Optional[bool] = ..., models: _Optional[_Iterable[str]] = ...) -> None: ...

class SchemaInfo(_message.Message):
    __slots__ = ("name", "fields", "rank_profiles", "documents")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    RANK_PROFILES_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    fields: _containers.RepeatedCompositeFieldContainer[FieldInfo]
    rank_profiles: _containers.RepeatedCompositeFieldContainer[RankProfileInfo]
    documents: int
    def __init__(self, name: _Optional[str] = ..., fields: _Optional[_Iterable[_Union[FieldInfo, _Mapping]]] = ..., rank_profiles: _Optional[_Iterable[_Union[RankProfileInfo, _Mapping]]] = ..., documents: _Optional[int] = ...) -> None: ...

class ApplicationInfo(_message.Message):
    __slots__ = ("schemas", "device", "device_reason")
    SCHEMAS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_REASON_FIELD_NUMBER: _ClassVar[int]
    schemas: _containers.RepeatedCompositeFieldContainer[SchemaInfo]
    device: str
    device_reason: str
    def __init__(self, schemas: _Optional[_Iterable[_Union[SchemaInfo, _Mapping]]] = ..., device: _Optional[str] = ..., device_reason: _Optional[str] = ...) -> None: ...
