"""The provider's reports (admins): what was sold, what is still owed in
unused credit, what expired, the time worked, overage billed and ratings.
Queries and pure functions, no web layer: portal.reports shows them."""
