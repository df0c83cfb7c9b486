"""Findings, the catalogue of checks with their thresholds, the judges, the escalation matrix and who is on call.

    finding.py     Severity, Finding (+ Finding.of / Finding.ok / Finding.unusable), Findings (a run's, sections),
                   skipped_target (a target not configured: listed first, apart); the component is the check's
    catalogue.py   CHECKS (every check: what it tells, its Threshold), CATALOGUE (the checks' thresholds), SECTIONS
                   (notebook sections without a verdict), threshold() with its IMSNB_THRESHOLD_* overrides
    judging.py     judge(check, value, message, floor=, limit=, period=), unjudged (nothing to judge: the level and
                   unit all the same), on_lifetime (a since-restart number is context)
    confidence.py  judge_ratio: a rate judged on its 95% interval (hit and error rates)
    escalation.py  the escalation matrix (escalation_for) and the on-call rotation (on_call: which role)
    oncall.py      the `[oncall]` roster: which person holds the role and how to reach them

A new check is a fetcher and a judge in its source's topic module (in that module's `__all__`, so the source
package exports it), plus a CHECKS entry here; the judge words its message from `threshold(check)`, never a copied
number, and takes the period its number covers. tests/test_catalogue.py fails when either half is missing.
"""

# The face re-exports each topic module's __all__: a new name goes in its module's __all__, not here.
from imsnb.findings import catalogue as _catalogue
from imsnb.findings import escalation as _escalation
from imsnb.findings import finding as _finding
from imsnb.findings import judging as _judging
from imsnb.findings.catalogue import *
from imsnb.findings.escalation import *
from imsnb.findings.finding import *
from imsnb.findings.judging import *

__all__: list[str] = []
__all__ += _catalogue.__all__
__all__ += _escalation.__all__
__all__ += _finding.__all__
__all__ += _judging.__all__
