"""The `ledger` command line: audits, projections, migrations."""
