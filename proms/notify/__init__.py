"""Messages to patients: the channels (SMTP email, Twilio texts, files, null) and their texts."""
