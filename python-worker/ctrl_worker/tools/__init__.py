"""Entry points run by hand or by scripts, never imported by the server: pretrain, bench, testing."""
