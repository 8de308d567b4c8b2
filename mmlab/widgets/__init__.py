"""ipywidgets UIs. They read results and logs through `Lab`; they never talk HTTP or SQL.

    from mmlab.widgets import (PromptExplorer, ReasoningExplorer, CostPlanner, SweepBuilder,
                               UsageDashboard)
    PromptExplorer(lab)            # prompt boxes, sliders, Run, streamed answer, cost, history
    ReasoningExplorer(res.df)      # compare reasoning/answer/truncation/latency across a sweep
    CostPlanner(lab)               # calls/day × tokens → daily and monthly cost curves
    SweepBuilder(lab)              # define a grid, see plan + forecast live, run with progress
    UsageDashboard(lab)            # spend per day by model/provider/tag, totals, recent calls

Each is usable headless (set values, press buttons, read state), which is how tests drive them.
"""

from .cost_planner import CostPlanner
from .prompt_explorer import PromptExplorer
from .reasoning_explorer import ReasoningExplorer
from .sweep_builder import SweepBuilder
from .usage_dashboard import UsageDashboard

__all__ = ["CostPlanner", "PromptExplorer", "ReasoningExplorer", "SweepBuilder", "UsageDashboard"]
