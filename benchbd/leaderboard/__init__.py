"""Leaderboard tables in the shape of the BaDLoss paper's tables 1-3, from a run's ``results.jsonl``.

- Table 1: one-attack detection AUROC, defense × attack (example-level defenses). Table 1b: the TPR at a fixed
  FPR, from the scores. Table 1c: the examples the defense flagged and the harness removed, TPR and FPR.
- Table 2: one-attack clean accuracy and attack success rate after filtering and retraining ("No Defense", the
  rows of the defenses of unit ``none``: the poisoned model). Table 2b: the ASR boosted at test time.
- Table 3a: multi-attack detection AUROC, over all poisoned examples and per attack. Table 3d: the examples
  removed, TPR and FPR.
- Table 3: multi-attack clean accuracy, ASR per attack and average ASR after retraining. Table 3b: boosted ASR.
- Table 4: model-level detection (docs/architecture.md's "model" unit): is the backdoored model flagged, is its target
  named, how many clean models and classes are flagged, AUROC of the scores over the model population.
- Table 5: training-run detection (the "training run" unit): malicious and benign servers flagged, overhead.

Which ASR (issue 15, item 5): Tables 2 and 3 show ``asr``, the trigger exactly as trained (BaDLoss section 5's
text); Tables 2b and 3b show ``asr_boosted``, the trigger of the attacks with a test-time boost applied with
``test_time=True`` (×2 for the blends and sinusoid, as BaDLoss's reference code's ``BOOSTING_RATIO``). A record
without ``code`` digests was made before both were measured: its ``asr`` is the boosted one, and its ASR cells say
so in a footnote.

Several seeds give the mean ± the half-width of its 95% t-interval over the seeds, with n. Cells that could not be computed say why in a footnote, and so does every cell of
an example-level defense that removed nothing (with the gate it recorded, e.g. Neural Cleanse's anomaly index), so
that its row is never silently equal to No Defense's. The header notes records made from several versions of a
plugin's code (their ``code`` digests) and records made before benchbd recorded them. A plugin that ran with
different parameters in one run directory (a matrix re-run there with other ``-P`` values) is shown once per
parameter set, named with the parameters that differ, e.g. ``rttd (backdoor_lr_ratio=0.1)``: such records are
different experiments, not seeds of one.

``--compare badloss`` adds, after these, Tables 1, 2 and 3 beside the values BaDLoss publishes
(:mod:`benchbd.papers`): ours, the paper's, and the difference. The paper's ASR comes from its reference code,
which boosts the blends and sinusoid ×2 at test time, so it is compared with ``asr_boosted`` where a record has it.

Modules: :mod:`~benchbd.leaderboard.cells` (a cell's text and footnotes), :mod:`~benchbd.leaderboard.labels` (a
name per parameter set), :mod:`~benchbd.leaderboard.tables` (the tables), :mod:`~benchbd.leaderboard.compare`
(beside a paper), :mod:`~benchbd.leaderboard.render` (header, markdown, terminal).
"""
