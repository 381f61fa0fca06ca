"""Analytics: pure Polars computations over data loaded from the stores."""
