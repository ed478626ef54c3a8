"""Pure scoring: answers -> scores, change from baseline, cohort statistics.

Imports neither Flask nor SQLAlchemy (tests/scoring/test_purity.py keeps it so), so analysts can
use it on its own, e.g. to batch-score a CSV.
"""

from proms.scoring.summed import score

__all__ = ["SCORING_VERSION", "score"]

# Stored on every score. Bump it when any scoring rule or table changes; `proms rescore` then
# recomputes stored scores and reports what changed.
SCORING_VERSION = "2026.11.1"
