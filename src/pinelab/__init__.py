"""PineLab: TradingView alerts to broker orders, with a faithful record of everything."""

__version__ = "0.1.0"
