"""Shipped prompt templates and the scenario's overrides of them.

Templates are `str.format` strings. A scenario overrides any of them under
`prompts:` by key; unknown keys and unknown placeholders are errors.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

DEFAULTS: dict[str, str] = {
    # Repeated 2x2 games: the prompt of protocols §2 (Akata et al.).
    "repeated.system": (
        "{persona}You are playing a game repeatedly with another player. In this game, you "
        "can choose between Option {first} and Option {second}. {length}"
        "The rules of the game are as follows:\n{rules}"
    ),
    "repeated.length": "You will play {rounds} rounds in total with the same player. ",
    "repeated.rule": (
        "If you choose Option {mine} and the other player chooses Option {theirs}, then you "
        "win {my_points} points and the other player wins {their_points} points."
    ),
    "repeated.history": (
        "In round {round}, you chose Option {mine} and the other player chose Option "
        "{theirs}. Thus, you won {my_points} points and the other player won {their_points} "
        "points."
    ),
    "repeated.question": (
        "You are currently playing round {round}.\n"
        "Q: Which Option do you choose, Option {first} or Option {second}?\n"
        'Answer with a JSON object: {{"choice": "{first}"}} or {{"choice": "{second}"}}.'
    ),
    "repeated.predict": (
        "You are currently playing round {round}.\n"
        "Q: Which Option do you predict the other player will choose, Option {first} or "
        "Option {second}?\n"
        'Answer with a JSON object: {{"prediction": "{first}"}} or '
        '{{"prediction": "{second}"}}.'
    ),
    "repeated.after_predict": (
        "Given that you predict the other player will choose Option {prediction} in round "
        "{round}, which Option do you think is the best to choose for you in this round, "
        "Option {first} or Option {second}?\n"
        'Answer with a JSON object: {{"choice": "{first}"}} or {{"choice": "{second}"}}.'
    ),
    # Donor game with cultural evolution: the prompts of protocols §1 (Vallinder & Hughes,
    # arXiv 2412.10270, appendix), shortened where noted; agents are not told the number
    # of rounds unless `game.reveal_rounds` ({length} is then filled).
    "donor.system": (
        "{persona}Each player is given an initial endowment of {endowment} units of a "
        "resource. In each round, you are randomly paired with another individual. One of "
        "you is a donor, and the other is a recipient. The donor decides to give up some "
        "amount of the resource. The recipient receives {multiplier}x the number of units "
        "that the donor gave up. If you were a donor in one round, you will be a recipient "
        "in the next round, and vice versa. {length}{punish}Your goal is to maximize the "
        "number of units you have after the final round. After the game has finished, the "
        "best-performing {survivors} of agents will survive to the next generation, and "
        "continue playing."
    ),
    "donor.length": "The game lasts {rounds} rounds. ",
    "donor.punish_rules": (
        "Instead of giving, the donor may punish the recipient: for every unit the donor "
        "spends, the recipient loses {fine} units. Bear in mind that others may punish you "
        "too. "
    ),
    "donor.strategy": (
        "Your name is {name}. Based on the description of the game, create a strategy that "
        "you will follow in the game. As a donor, you will see how many units the recipient "
        "has and what the recipient did in their last round as a donor: how much they gave, "
        "in percent, and to whom; then what that agent did in their previous round as a "
        "donor, and so on, up to {depth} rounds back. In the first round there is no "
        "information about the recipient's previous behaviour. {advice}Before formulating "
        "your strategy, briefly think step by step about what would be a successful "
        "strategy in this game. Then describe your strategy briefly without explanation in "
        'one sentence that starts: "My strategy will be".'
    ),
    "donor.strategy_advice": (
        "How did the best-performing agents of the previous generation play? Here is the "
        "advice of the best-performing agents of generation {previous}, along with their "
        "final scores:\n{items}\nModify this advice to create your own strategy, improving "
        "on it. "
    ),
    "donor.advice_item": "- {name} (score {score}): {strategy}",
    "donor.trace_give": "In round {round}, {donor} gave {percent}% of their resources to {recipient}.",
    "donor.trace_punish": (
        "In round {round}, {donor} spent {percent}% of their resources punishing {recipient}."
    ),
    "donor.trace_none": "There is no information yet about what {recipient} did as a donor.",
    "donor.donate": (
        "Your name is {name}. As you will recall, here is the strategy you decided to "
        "follow: {strategy}\nThis is generation {generation}. It is now round {round}. In "
        "this round, you have been paired with {recipient}. They currently have "
        "{recipient_resources} units of the resource. Here is what {recipient} and their "
        "earlier partners did in previous rounds:\n{trace}\nYou will take the role of "
        "donor. You currently have {resources} units of the resource. How many units do you "
        "give up? {punish_question}Very briefly think step by step about how you apply your "
        "strategy in this situation (at most {reasoning_chars} characters), then answer "
        "with a JSON object {answer_format}."
    ),
    "donor.punish_question": (
        'You may instead spend units punishing them: set "punish" to true to punish with '
        "the amount, false to give it. "
    ),
    # Traveler's dilemma (Basu 1994; Capra, Goeree, Gomez & Holt 1999): neutral wording,
    # every payoff rule stated; {length} is filled when `game.reveal_rounds`.
    "travelers.system": (
        "{persona}You are playing a game repeatedly with another player. In each round, "
        "you and the other player each write down a claim: a whole number from {low} to "
        "{high}. Neither of you sees the other's claim before writing your own. {length}"
        "The points of a round are as follows:\n"
        "- If both claims are equal, each of you wins that number of points.\n"
        "- If the claims differ, each of you wins the lower of the two claims; on top of "
        "that, the player with the lower claim wins {reward} points more and the player "
        "with the higher claim loses {reward} points."
    ),
    "travelers.length": "You will play {rounds} rounds in total with the same player. ",
    "travelers.history": (
        "In round {round}, you claimed {mine} and the other player claimed {theirs}. "
        "Thus, you won {my_points} points."
    ),
    "travelers.question": (
        "You are currently playing round {round}.\n"
        "Q: What is your claim, a whole number from {low} to {high}?\n"
        'Answer with a JSON object {{"claim": N}}, where N is your claim.'
    ),
    "persona": "{persona}\n\n",
    "repair": (
        "Your reply was not valid: {problem}. Answer again with only a JSON object that "
        "matches this schema: {schema}"
    ),
}


COMMON = ("persona", "repair")


def game_prompts(prefix: str) -> dict[str, str]:
    """The default templates of one game (keys ``prefix.*``) plus the shared ones."""
    return {k: v for k, v in DEFAULTS.items() if k.startswith(f"{prefix}.") or k in COMMON}


def placeholders(template: str) -> set[str]:
    """The `{names}` a template uses."""
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


class Prompts:
    """The templates in force: shipped defaults with a scenario's overrides on top."""

    def __init__(
        self, overrides: Mapping[str, str] | None = None, defaults: Mapping[str, str] | None = None
    ):
        base = dict(defaults if defaults is not None else DEFAULTS)
        for key, text in (overrides or {}).items():
            if key not in base:
                raise ValueError(
                    f"prompts.{key}: unknown prompt template; expected one of {', '.join(sorted(base))}"
                )
            extra = placeholders(text) - placeholders(base[key])
            if extra:
                raise ValueError(
                    f"prompts.{key}: unknown placeholder(s) {sorted(extra)}; "
                    f"available: {sorted(placeholders(base[key]))}"
                )
            base[key] = text
        self.templates = base

    def render(self, key: str, **values: object) -> str:
        """Fill template `key` with `values`."""
        return self.templates[key].format(**values)
