/*
 * The demo monolith's invoices, and a rewrite of them with one bug, so that a shadow route can
 * show what it is for: the rewrite gets a copy of live traffic, and ficus finds the answer
 * where the two disagree before any user is moved to it.
 */

interface Invoice {
  id: number;
  customer: string;
  total: string;
  currency: string;
  due: string;
  paid: boolean;
}

const BOOK: readonly Invoice[] = [
  { id: 1001, customer: 'Acme GmbH', total: '42.00', currency: 'EUR', due: '2026-10-31', paid: true },
  { id: 1002, customer: 'Globex Ltd', total: '17.50', currency: 'EUR', due: '2026-11-30', paid: false },
];

/** Two invoices on which the monolith and its rewrite agree, and disagree. */
export const INVOICE_EXAMPLES = { same: 1001, different: 1002 } as const;

/** `status` as each side computes it: the rewrite calls an unpaid invoice overdue on its due day. */
function status(invoice: Invoice, rewrite: boolean): string {
  if (invoice.paid) return 'paid';
  return rewrite && invoice.id === INVOICE_EXAMPLES.different ? 'overdue' : 'open';
}

function view(invoice: Invoice, rewrite: boolean): object {
  const { paid: _paid, ...fields } = invoice;
  return { ...fields, status: status(invoice, rewrite) };
}

/**
 * The JSON answer to `GET /invoices` or `/invoices/ID`, from the monolith or from its rewrite;
 * undefined for any other path. Neither side names itself in the body, so the comparison sees
 * only what the code computed.
 */
export function invoicesAnswer(path: string, rewrite: boolean): { status: number; body: string } | undefined {
  if (path === '/invoices' || path === '/invoices/') {
    const list = BOOK.map(({ id, customer, total, currency }) => ({ id, customer, total, currency }));
    return { status: 200, body: `${JSON.stringify({ invoices: list })}\n` };
  }
  const id = /^\/invoices\/(\d+)$/.exec(path)?.[1];
  if (id === undefined) return undefined;
  const invoice = BOOK.find((i) => i.id === Number(id));
  if (invoice === undefined) return { status: 404, body: `${JSON.stringify({ error: `no invoice ${id}` })}\n` };
  return { status: 200, body: `${JSON.stringify(view(invoice, rewrite))}\n` };
}
