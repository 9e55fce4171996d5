"""Game plug-ins: one module per game, each defining ``PLUGIN = GameKind(...)``.

`society.registry.game_kinds` finds them here; nothing else lists the games.
"""
