"""The shared vocabulary: what every layer may import without pulling in another layer.

``errors`` (the one exception hierarchy), ``terms`` (job statuses and kinds,
splits, compared metrics, request bounds, gate defaults) and ``scoring`` (the
composite score and the weight rules the spec defines). Nothing here imports
daemon/, handlers/, store/ or evaluation/, nor anything heavy.
"""
