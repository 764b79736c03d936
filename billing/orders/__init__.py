"""Orders and their money: orders, payments, invoices and credit notes
(``models``), placing and paying (``services``), the bill of an approved
overage (``overage_bills``), refunds, gapless invoice numbers (``invoices``),
payment references and the words of an order (``wording``)."""
