"""Regenerate docanalyst's own sample PDFs (public domain: written for this project).

.venv/bin/python samples/make_samples.py
"""

from pathlib import Path

import pymupdf

HERE = Path(__file__).parent

CONTRACT = [
    """<h2>MASTER SERVICES AGREEMENT</h2>
<p>This Master Services Agreement (the "Agreement") is made on March 3, 2025 (the "Effective Date") between
<b>Northwind Analytics Ltd.</b>, a company registered in England ("Supplier"), and <b>Bluefin Logistics Inc.</b>,
a Delaware corporation ("Customer").</p>
<p><b>1. Services.</b> Supplier shall provide the data analysis services described in Schedule A. Supplier shall
assign qualified staff and shall deliver a monthly report by the fifth business day of each month.</p>
<p><b>2. Term.</b> This Agreement begins on the Effective Date and continues for two (2) years. It renews
automatically for successive one (1) year periods unless either party gives written notice of non-renewal at
least sixty (60) days before the end of the then-current term.</p>
<p><b>3. Fees and Payment.</b> Customer shall pay the fees in Schedule B. Supplier invoices monthly in arrears and
Customer shall pay each undisputed invoice within thirty (30) days of receipt.</p>""",
    """<p><b>4. Termination.</b> Either party may terminate this Agreement for material breach if the breach is not
cured within thirty (30) days after written notice. Customer may terminate for convenience on ninety (90) days'
written notice.</p>
<p><b>5. Limitation of Liability.</b> Except for breach of confidentiality, each party's total liability under this
Agreement shall not exceed the fees paid by Customer in the twelve (12) months before the claim.</p>
<p><b>6. Governing Law.</b> This Agreement is governed by the laws of the State of New York.</p>
<h3>Schedule B - Fees</h3>
<table border="1" cellpadding="4">
<tr><th>Service</th><th>Monthly fee (USD)</th><th>Billing</th></tr>
<tr><td>Data pipeline operation</td><td>12,000</td><td>monthly in arrears</td></tr>
<tr><td>Analytics reporting</td><td>4,500</td><td>monthly in arrears</td></tr>
<tr><td>Ad-hoc analysis (per day)</td><td>1,200</td><td>as used</td></tr>
</table>
<p>Signed for Northwind Analytics Ltd. by Jane Holloway, Director, and for Bluefin Logistics Inc. by
Marcus Reyes, Chief Operating Officer.</p>""",
]


def write(path: Path, pages: list[str], title: str) -> None:
    doc = pymupdf.open()
    for html in pages:
        page = doc.new_page(width=595, height=842)
        page.insert_htmlbox(
            pymupdf.Rect(56, 56, 539, 786),
            html,
            css="* {font-family: serif; font-size: 11pt;} td, th {border: 1px solid black;}",
        )
    doc.set_metadata(
        {
            "title": title,
            "author": "docanalyst samples",
            "creationDate": "D:20250303000000",
            "modDate": "D:20250303000000",
        }
    )
    doc.save(path, garbage=4, deflate=True, no_new_id=True)


if __name__ == "__main__":
    write(HERE / "northwind-bluefin-services-agreement.pdf", CONTRACT, "Master Services Agreement")
    print("wrote", HERE / "northwind-bluefin-services-agreement.pdf")
