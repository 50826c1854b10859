"""Brokers: the Broker protocol, its adapters (paper, Alpaca, CCXT) and broker accounts."""
