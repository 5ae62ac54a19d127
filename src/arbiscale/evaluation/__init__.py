"""Evaluation runs behind `arbiscale eval sr|gen`: sharded over processes, one report on the main process.

SR (`sr.py`): evaluate_sr(eval_set, SrEvalConfig, {method: model}, lpips, state, device) -> (results, grids),
    write_sr_report(...) -> results.json, report.md, metric_vs_scale.png, grid_x<scale>.png.
Generation (`gen.py`): evaluate_gen(pipe, GenEvalConfig, extractor, reference, state, device) -> (results,
    rows), write_gen_report(...) -> results.json, report.md, self_ssim.png, samples.png.
Report helpers (`report.py`): atomic writes that never overwrite unless asked, tables, plots, grids.
"""

from .gen import GenEvalConfig, evaluate_gen, write_gen_report
from .sr import BASELINES, OURS, SrEvalConfig, SrRun, evaluate_sr, write_sr_report

__all__ = ["BASELINES", "OURS", "GenEvalConfig", "SrEvalConfig", "SrRun", "evaluate_gen", "evaluate_sr", "write_gen_report", "write_sr_report"]
