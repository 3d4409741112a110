"""glider-relay's Slack side: slash commands in, Block Kit replies out."""
