"""Trading: sizing, the order state machine, execution, positions and P&L."""
