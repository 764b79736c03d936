"""The ticket desk: tickets, their thread, files, logged time and the
invitations into an account's pool (``models``), and the services that
work them (``services``). DESK.md describes the workflow."""
