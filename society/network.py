"""The interaction network: a networkx graph over agent indices 0..n-1."""

from __future__ import annotations

import math
from pathlib import Path

import networkx as nx

from society.config import NetworkConfig
from society.errors import UserError


def build_network(cfg: NetworkConfig, n: int, seed: int) -> nx.Graph:
    """Build the graph named by `cfg` over `n` agents; random graphs use `seed`."""
    if cfg.kind == "complete":
        return nx.complete_graph(n)
    if cfg.kind == "ring":
        if cfg.k >= n:
            raise UserError(f"network.k: must be smaller than the population ({n}), got {cfg.k}")
        return nx.watts_strogatz_graph(n, cfg.k, 0.0, seed=seed)
    if cfg.kind == "small_world":
        if cfg.k >= n:
            raise UserError(f"network.k: must be smaller than the population ({n}), got {cfg.k}")
        return nx.connected_watts_strogatz_graph(n, cfg.k, cfg.p, seed=seed)
    if cfg.kind == "scale_free":
        if cfg.m >= n:
            raise UserError(f"network.m: must be smaller than the population ({n}), got {cfg.m}")
        return nx.barabasi_albert_graph(n, cfg.m, seed=seed)
    if cfg.kind == "grid":
        rows = cfg.rows or int(math.sqrt(n))
        if n % rows:
            raise UserError(f"network.rows: {rows} does not divide the population ({n})")
        grid = nx.grid_2d_graph(rows, n // rows)
        return nx.convert_node_labels_to_integers(grid, ordering="sorted")
    if cfg.kind == "edgelist":
        return _read_edgelist(cfg.path, n)
    raise UserError(f"network.kind: unknown kind {cfg.kind!r}")  # pragma: no cover


def _read_edgelist(path: str | None, n: int) -> nx.Graph:
    if not path:
        raise UserError("network.path: an edgelist network needs a file path")
    file = Path(path)
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    try:
        lines = file.read_text().splitlines()
    except OSError as exc:
        raise UserError(f"network.path: cannot read {file} ({exc.strerror})") from None
    for lineno, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.replace(",", " ").split()
        try:
            a, b = int(parts[0]), int(parts[1])
        except (ValueError, IndexError):
            raise UserError(f"{file}:{lineno}: expected two agent indices 'i j'") from None
        if not (0 <= a < n and 0 <= b < n):
            raise UserError(f"{file}:{lineno}: agent index out of range 0..{n - 1}")
        graph.add_edge(a, b)
    return graph
