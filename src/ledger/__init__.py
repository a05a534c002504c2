"""The write side: money rules, the double-entry journal, aggregates and the application."""
