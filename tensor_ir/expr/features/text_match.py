"""Features that need the query matched against the documents: text-match features (query
terms against tokenised fields) and query-item match features (wand, dotProduct, weakAnd,
nearestNeighbor and predicate items of the query). Matching has its own issue (#14); until
it lands, a profile that uses one is refused at deploy, located and named by its kind, so
that a user can tell which part is missing."""

from __future__ import annotations

from typing import Any

from tensor_ir.expr.ast import Call
from tensor_ir.expr.errors import RankingError
from tensor_ir.expr.features import rank_feature

# Vespa's features that need the query's terms matched against an indexed text field
TEXT_MATCH_FEATURES = (
    "bm25", "nativeRank", "nativeFieldMatch", "nativeProximity", "nativeAttributeMatch", "fieldMatch",
    "fieldTermMatch", "fieldInfo", "textSimilarity", "attributeMatch", "elementCompleteness",
    "elementSimilarity", "matchCount", "matches", "term", "termDistance", "queryTermCount",
    "matchedTermCount", "fieldLength", "termFieldMd", "closestTerm",
    "elementwise",  # elementwise(bm25(f), dim, cell type): bm25 per element of an array field
)

# Vespa's features computed from one query item matched against a field, and what each needs
_SCORING_ITEMS = "wand, dotProduct, weakAnd or nearestNeighbor items of the query matched against a field"
QUERY_ITEM_FEATURES: dict[str, str] = {
    "rawScore": _SCORING_ITEMS,
    "itemRawScore": _SCORING_ITEMS,
    "subqueries": "a predicate item of the query matched against a predicate field",
}


@rank_feature(*TEXT_MATCH_FEATURES)
def _text_match(ctx: Any, compiler: Any, call: Call) -> Any:
    raise RankingError(f"text-match feature {call.name} is not supported yet (it needs text matching "
                       "of query terms)", call.loc)


@rank_feature(*QUERY_ITEM_FEATURES)
def _query_item_match(ctx: Any, compiler: Any, call: Call) -> Any:
    raise RankingError(f"query-item match feature {call.name} is not supported yet (it needs "
                       f"{QUERY_ITEM_FEATURES[call.name]}: issue #14)", call.loc)
