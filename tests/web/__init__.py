"""Browser, HTTP and static tests of the portal chat widget (bot/web)."""
