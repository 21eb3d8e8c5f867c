"""Text-match features. Text matching (tokenised fields, query terms) has its own issue;
until it lands, a profile that uses one is refused at deploy, located and named."""

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
)


@rank_feature(*TEXT_MATCH_FEATURES)
def _text_match(ctx: Any, compiler: Any, call: Call) -> Any:
    raise RankingError(f"text-match feature {call.name} is not supported yet (it needs text matching "
                       "of query terms)", call.loc)
