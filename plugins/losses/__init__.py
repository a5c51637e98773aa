"""Built-in loss terms: each module holds a pure function (formula + paper) and a thin LossTerm."""
