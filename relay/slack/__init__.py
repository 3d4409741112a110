"""What the relay needs to speak to Slack: the Web API client and Block Kit rendering."""
