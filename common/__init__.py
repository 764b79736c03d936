"""The ground both web layers stand on: Flask extensions, settings, languages,
error pages, identity, payment providers, PDF documents, mail, and the words
of a ticket. Nothing here imports shop/, portal/ or commands/."""
