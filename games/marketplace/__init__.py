"""The two-sided agentic marketplace (Magentic Marketplace: Bansal et al., arXiv 2510.25779).

* :mod:`.data`: customers and businesses, seeded generators for the restaurants and
  contractors domains, the loader of the published YAML directory format, the optimum;
* :mod:`.search`: the search modes (simple, filtered, lexical, optimal, embedding);
* :mod:`.game`: the game on the protocol (typed actions, messages, proposals, payments).
"""

from games.marketplace.data import (
    DOMAINS,
    Business,
    Customer,
    Dataset,
    generate,
    load_dir,
    manipulation_text,
    optimal_choice,
    write_dir,
)
from games.marketplace.game import (
    BusinessAction,
    BusinessView,
    CustomerAction,
    CustomerView,
    MarketGame,
    MarketKind,
    MarketRules,
    MarketSetup,
    ProposalItem,
)
from games.marketplace.search import MODES, Constraints, search

__all__ = [
    "DOMAINS",
    "MODES",
    "Business",
    "BusinessAction",
    "BusinessView",
    "Constraints",
    "Customer",
    "CustomerAction",
    "CustomerView",
    "Dataset",
    "MarketGame",
    "MarketKind",
    "MarketRules",
    "MarketSetup",
    "ProposalItem",
    "generate",
    "load_dir",
    "manipulation_text",
    "optimal_choice",
    "search",
    "write_dir",
]
