"""Message content: headers, delivery status notifications."""
