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

# A one-way NDA for the example user template (samples/templates/nda.yaml; labels in tests/data/nda/labels.csv).
NDA = [
    """<h2>CONFIDENTIALITY AND NON-DISCLOSURE AGREEMENT</h2>
<p>This Non-Disclosure Agreement (the "Agreement") is entered into as of May 12, 2025 (the "Effective Date") by
and between <b>Harbor Peak Biotech, Inc.</b>, a Massachusetts corporation with offices at 40 Pier Street, Boston
("Disclosing Party"), and <b>Quillon Data Systems LLC</b>, a Texas limited liability company ("Receiving
Party").</p>
<p><b>1. Purpose.</b> The Disclosing Party will share certain information with the Receiving Party solely to
evaluate a possible collaboration on the analysis of clinical trial data (the "Purpose").</p>
<p><b>2. Confidential Information.</b> "Confidential Information" means all non-public business, technical,
scientific and clinical information that the Disclosing Party discloses to the Receiving Party, in any form,
whether or not it is marked as confidential.</p>
<p><b>3. Exclusions.</b> Confidential Information does not include information that (a) is or becomes publicly
available through no fault of the Receiving Party; (b) was known to the Receiving Party before its disclosure,
as shown by written records; (c) is independently developed by the Receiving Party without use of the
Confidential Information; or (d) is rightfully received from a third party without a duty of confidentiality.</p>
<p><b>4. Obligations.</b> The Receiving Party shall use the Confidential Information only for the Purpose, shall
not disclose it to any third party, and shall protect it with at least the care it uses for its own confidential
information, and no less than reasonable care. Disclosure to employees is allowed only on a need-to-know basis.</p>""",
    """<p><b>5. Term.</b> This Agreement remains in effect for two (2) years from the Effective Date. The Receiving
Party's obligations of confidentiality survive for five (5) years after the date of each disclosure.</p>
<p><b>6. Return of Materials.</b> Within fifteen (15) days after the Disclosing Party's written request, the
Receiving Party shall return or destroy all Confidential Information and all copies, and shall certify the
destruction in writing.</p>
<p><b>7. No License.</b> Nothing in this Agreement grants the Receiving Party any license or right in the
Confidential Information, except the limited right to use it for the Purpose.</p>
<p><b>8. Remedies.</b> A breach of this Agreement may cause irreparable harm, and the Disclosing Party may seek
injunctive relief in addition to any other remedy.</p>
<p><b>9. Governing Law.</b> This Agreement is governed by the laws of the Commonwealth of Massachusetts.</p>
<p>Signed for Harbor Peak Biotech, Inc. by Dana Whitfield, Chief Executive Officer, and for Quillon Data
Systems LLC by Arun Mehta, Managing Member.</p>""",
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
    write(HERE / "harborpeak-quillon-nda.pdf", NDA, "Non-Disclosure Agreement")
    print("wrote", HERE / "harborpeak-quillon-nda.pdf")
