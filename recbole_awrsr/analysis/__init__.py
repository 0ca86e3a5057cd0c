"""Analysis of trained models: attention heat maps, NDCG@N curves, learning curves, cost.

Command line: ``python -m recbole_awrsr.analysis {attention,topn,curves,cost} ...``
(or ``recbole-awrsr analysis ...``); see ``docs/analysis.md``.

Modules, one concept each: :mod:`.history` (the per-epoch training history the
trainer records), :mod:`.attention` (exporting and drawing attention weights),
:mod:`.topn` (NDCG@N / Recall@N for several N), :mod:`.curves` (validation NDCG
and gradient norm per epoch), :mod:`.cost` (parameters and time per mechanism),
:mod:`.output` (safe writing). Importing this package imports none of them, so the
trainer can use :mod:`.history` without loading matplotlib.
"""
