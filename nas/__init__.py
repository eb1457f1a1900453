"""The search engine: data, training, cost, pruning, studies, reports, export and the CLI."""
