"""Accounts: users, passwords, sessions and JWTs."""
