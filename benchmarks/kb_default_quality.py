"""StackFAQ and our sets with the default configuration vs USE only, from the embedding cache.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/kb_default_quality.py

Quality only (MAP, hit@k, MRR): query vectors come from `var/kb/embed-cache` (filled by
`benchmarks/kb_eval.py`; missing ones are computed with the real models), so no latency is
measured. The timed run is `benchmarks/kb_eval.py --embedders use-multilingual --modes hybrid`.
"""

import json
import sys

sys.path.insert(0, ".")
from dataclasses import replace
from pathlib import Path

from app.settings import load_settings
from benchmarks.kb_eval import DEV, TEST, stackfaq
from knowledge_base.cache import CachingEmbedder
from knowledge_base.embedders import get_embedder
from knowledge_base.evaluation import (
    article_corpus,
    build_corpus_index,
    evaluate_index,
    evaluate_query_set,
    load_jsonl,
)
from knowledge_base.service import search_params_from

s = load_settings().kb
p = search_params_from(s)
cache = Path("var/kb/embed-cache")
use = CachingEmbedder(get_embedder(s.embedder), cache)
ml = CachingEmbedder(get_embedder(s.english_embedder), cache)
corpus, queries = stackfaq()
size = dict(chunk_size=s.chunk_size, chunk_overlap=s.chunk_overlap)
idx = build_corpus_index(corpus, use, english_embedder=ml, **size)
for label, params, en in (("default", p, ml), ("use-only", replace(p, english_weight=0.0), None)):
    r = evaluate_index(idx, use, queries, params=params, english_embedder=en)
    print(
        "stackfaq",
        label,
        json.dumps({k: round(v, 4) for k, v in r.metrics.items() if not k.startswith("lat")}),
        r.n_queries,
        flush=True,
    )
ours = build_corpus_index(article_corpus(Path(s.articles_dir)), use, english_embedder=ml, **size)
for name, path in (("dev", DEV), ("test", TEST)):
    qs = load_jsonl(path)
    for label, params, en in (
        ("default", p, ml),
        ("use-only", replace(p, english_weight=0.0), None),
    ):
        res = evaluate_query_set(ours, use, qs, params=params, english_embedder=en)
        print(
            name,
            label,
            {
                k: (
                    round(v.metrics["hit@1"], 3),
                    round(v.metrics["hit@3"], 3),
                    round(v.metrics["mrr"], 3),
                    v.n_queries,
                )
                for k, v in res.items()
            },
            flush=True,
        )
use.save()
ml.save()
