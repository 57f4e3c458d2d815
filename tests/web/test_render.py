"""A stored message as the webmail shows it (web/render.py), hostile messages included."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mssante.web import render
from mssante.web.render import (
    PartNotFound,
    attachment_content,
    content_disposition,
    preview,
    render_message,
    sanitise_filename,
)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def url(part_id: str) -> str:
    return f"/mail/INBOX/7/part/{part_id}"


def html_message(body: str, extra: str = "") -> bytes:
    return crlf("From: a@b.mssante.fr\nSubject: s\nContent-Type: text/html; charset=utf-8\n"
                + extra + "\n" + body + "\n")


HTML_WITH_IMAGE = crlf("""From: =?utf-8?q?Dr_J=C3=A9r=C3=B4me_Martin?= <j.martin@ch-a.mssante.fr>
To: x@ch-b.mssante.fr, "Bé" <b@ch-b.mssante.fr>
Cc: Équipe: c@ch-b.mssante.fr, d@ch-b.mssante.fr;
Subject: =?utf-8?q?XDM/1.0/DDM+CR_op=C3=A9ratoire?= DUPONT Jean 19800101
Date: Mon, 7 Dec 2026 10:00:00 +0100
Message-ID: <m2@ch-a.mssante.fr>
In-Reply-To: <m1@ch-b.mssante.fr>
References: <m0@ch-a.mssante.fr>
 <m1@ch-b.mssante.fr>
Disposition-Notification-To: j.martin@ch-a.mssante.fr
X-MSS-MES: FIN
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: multipart/related; boundary=r

--r
Content-Type: multipart/alternative; boundary=a

--a
Content-Type: text/plain; charset=utf-8

Bonjour, voir https://example.org/a.
--a
Content-Type: text/html; charset=utf-8

<p>Bonjour <img src="cid:logo%40ch-a" alt="logo"> <img src="https://track.example/p.gif"></p>
--a--
--r
Content-Type: image/png
Content-ID: <logo@ch-a>
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--r--
--b
Content-Type: application/zip
Content-Disposition: attachment; filename*=UTF-8''IHE%5FXDM.ZIP
Content-Transfer-Encoding: base64

UEsDBBQAAAAIAA==
--b--
""")


# --- headers ---------------------------------------------------------------------------


def test_headers_are_decoded_and_the_xdm_prefix_hidden() -> None:
    view = render_message(HTML_WITH_IMAGE, url)
    assert view.subject == "CR opératoire DUPONT Jean 19800101"
    assert view.full_subject == "XDM/1.0/DDM+CR opératoire DUPONT Jean 19800101"
    assert view.is_xdm
    assert view.from_ is not None
    assert view.from_.text == "Dr Jérôme Martin <j.martin@ch-a.mssante.fr>"
    assert view.from_.mailboxes == (render.ShownMailbox("Dr Jérôme Martin",
                                                        "j.martin@ch-a.mssante.fr"),)
    assert view.to is not None
    assert [m.address for m in view.to.mailboxes] == ["x@ch-b.mssante.fr", "b@ch-b.mssante.fr"]
    assert view.cc is not None and [m.address for m in view.cc.mailboxes] == [
        "c@ch-b.mssante.fr", "d@ch-b.mssante.fr"]
    assert view.date is not None and view.date.isoformat() == "2026-12-07T10:00:00+01:00"
    assert view.message_id == "<m2@ch-a.mssante.fr>"
    assert view.in_reply_to == "<m1@ch-b.mssante.fr>"
    assert view.references == ("<m0@ch-a.mssante.fr>", "<m1@ch-b.mssante.fr>")
    assert view.read_receipt_requested
    assert view.read_receipt_to is not None
    assert view.read_receipt_to.mailboxes[0].address == "j.martin@ch-a.mssante.fr"
    assert view.x_mss_mes == "FIN"


@pytest.mark.parametrize(("subject", "shown"), [
    ("XDM/1.0/DDM+CR DUPONT Jean 19800101", "CR DUPONT Jean 19800101"),
    ("RE: XDM/1.0/DDM+CR DUPONT", "RE: CR DUPONT"),
    ("Tr : Re: XDM/1.0/DDM+CR", "Tr : Re: CR"),
    ("about XDM/1.0/DDM+x", "about XDM/1.0/DDM+x"),
    ("XDM/1.0/DDMx", "XDM/1.0/DDMx"),
])
def test_xdm_prefix(subject: str, shown: str) -> None:
    assert render.hide_xdm_prefix(subject) == shown


def test_a_message_without_headers_or_body() -> None:
    view = render_message(b"")
    assert (view.subject, view.from_, view.date, view.body.html) == ("", None, None, "")
    assert not view.read_receipt_requested and view.attachments == ()


def test_latin1_display_name() -> None:
    view = render_message("From: Hélène <h@ch-a.mssante.fr>\r\n\r\nx".encode("latin-1"))
    assert view.from_ == render.AddressField(
        "Hélène <h@ch-a.mssante.fr>", (render.ShownMailbox("Hélène", "h@ch-a.mssante.fr"),))


def test_unparseable_address_field_shows_its_text() -> None:
    view = render_message(crlf("From: <<<broken\nTo: =?utf-8?b?w6k=?= <<\n\nx\n"))
    assert view.from_ == render.AddressField("<<<broken", ())
    assert view.to is not None and view.to.text.startswith("é")


def test_huge_and_dirty_headers_are_cut_and_cleaned() -> None:
    raw = (b"Subject: " + b"a" * 1_000_000 + b"\r\nDate: someday\r\nX-MSS-MES: F\x1bIN\r\n"
           b"References: " + b" ".join(b"<%d@x>" % i for i in range(5000)) + b"\r\n\r\nbody")
    view = render_message(raw)
    assert len(view.subject) == render.MAX_HEADER_TEXT + 1
    assert view.date is None and view.date_text == "someday"
    assert view.x_mss_mes == "F IN"
    assert len(view.references) <= render.MAX_REFERENCES


def test_8bit_headers_utf8_then_latin1() -> None:
    raw = "Subject: Réunion\r\n\r\nx".encode() + b""
    assert render_message(raw).subject == "Réunion"
    assert render_message("Subject: Réunion\r\n\r\nx".encode("latin-1")).subject == "Réunion"


# --- the body ------------------------------------------------------------------------------


def test_html_is_preferred_and_inline_images_come_from_the_web() -> None:
    view = render_message(HTML_WITH_IMAGE, url)
    assert view.body.kind == "html" and view.body.part_id == "1.1.2"
    assert '<img src="/mail/INBOX/7/part/1.2" alt="logo">' in view.body.html
    assert "track.example" not in view.body.html
    assert view.remote_content_blocked
    assert view.body.__html__() == view.body.html


def test_without_an_image_url_no_image_is_shown() -> None:
    view = render_message(HTML_WITH_IMAGE)
    assert "src=" not in view.body.html
    assert [a.part_id for a in view.attachments] == ["1.2", "2"]  # the image is not shown


def test_attachments_leave_out_the_body_its_alternative_and_shown_images() -> None:
    view = render_message(HTML_WITH_IMAGE, url)
    assert view.attachments == (render.Attachment("2", "IHE_XDM.ZIP", "application/zip", 10,
                                                  None),)
    assert view.attachments[0].is_xdm and not view.incomplete


def test_plain_text_is_escaped_and_links_are_built() -> None:
    raw = crlf("Content-Type: text/plain; charset=iso-8859-1\n"
               "Content-Transfer-Encoding: quoted-printable\n\n"
               "<script>alert(1)</script> voir (https://ex.org/a?b=1&c=\"2) =E9t=E9.\n"
               "javascript:alert(1) http://x.org/<b>\n")
    view = render_message(raw)
    assert view.body.kind == "text" and view.body.part_id == "1"
    assert "<script" not in view.body.html and "&lt;script&gt;" in view.body.html
    assert ('<a href="https://ex.org/a?b=1&amp;c=" target="_blank" '
            'rel="noopener noreferrer nofollow">https://ex.org/a?b=1&amp;c=</a>') in view.body.html
    assert "été." in view.body.html
    assert '<a href="javascript' not in view.body.html
    assert '<a href="http://x.org/"' in view.body.html
    assert not view.remote_content_blocked


def test_plain_chosen_when_alternative_has_no_html_and_last_plain_wins() -> None:
    raw = crlf("Content-Type: multipart/alternative; boundary=a\n\n--a\n\none\n--a\n"
               "Content-Type: text/plain\n\ntwo\n--a\n"
               "Content-Type: application/pdf\n\n%PDF\n--a--\n")
    view = render_message(raw)
    assert view.body.html == "two" and view.body.part_id == "2"
    assert [a.part_id for a in view.attachments] == ["3"]


def test_related_start_parameter_names_the_root() -> None:
    raw = crlf('Content-Type: multipart/related; boundary=r; start="<main>"\n\n'
               "--r\nContent-Type: text/plain\nContent-ID: <other>\n\nnot this\n"
               "--r\nContent-Type: text/html\nContent-ID: <main>\n\n<b>this</b>\n--r--\n")
    view = render_message(raw)
    assert view.body.html == "<b>this</b>" and view.body.part_id == "2"


def test_related_without_a_matching_start_shows_its_first_part() -> None:
    raw = crlf('Content-Type: multipart/related; boundary=r; start="<gone>"\n\n'
               "--r\nContent-Type: text/html\n\n<i>first</i>\n"
               "--r\nContent-Type: image/gif\nContent-ID: <g>\n\nGIF89a\n--r--\n")
    view = render_message(raw, url)
    assert view.body.html == "<i>first</i>" and view.body.part_id == "1"
    assert [a.part_id for a in view.attachments] == ["2"]


def test_text_with_a_filename_is_an_attachment_not_the_body() -> None:
    raw = crlf("Content-Type: multipart/mixed; boundary=m\n\n--m\n"
               "Content-Type: text/plain; name=notes.txt\n\nattached\n--m\n"
               "Content-Type: text/plain\n\nthe body\n--m--\n")
    view = render_message(raw)
    assert view.body.html == "the body"
    assert [(a.part_id, a.filename) for a in view.attachments] == [("1", "notes.txt")]


def test_a_forwarded_message_is_one_attachment() -> None:
    inner = "Subject: old\nContent-Type: multipart/mixed; boundary=i\n\n--i\n\nin\n--i--\n"
    raw = crlf("Content-Type: multipart/mixed; boundary=m\n\n--m\n\nsee below\n--m\n"
               "Content-Type: message/rfc822\n\n" + inner + "--m--\n")
    view = render_message(raw)
    assert [(a.part_id, a.filename, a.content_type) for a in view.attachments] == [
        ("2", "part-2.eml", "message/rfc822")]
    got = attachment_content(raw, "2")
    assert got.data.startswith(b"Subject: old\r\n")
    assert attachment_content(raw, "2.1").data == b"in"  # IMAP's numbering inside it


def test_a_large_body_is_cut_and_its_attachment_size_counted() -> None:
    text = ("ligne de texte " * 5 + "\n") * (25 * 1024 * 1024 // 76)
    blob = base64.encodebytes(b"\x00" * (25 * 1024 * 1024)).decode()
    raw = crlf("Content-Type: multipart/mixed; boundary=m\n\n--m\n\n" + text + "--m\n"
               "Content-Type: application/pdf; name=scan.pdf\n"
               "Content-Transfer-Encoding: base64\n\n" + blob + "--m--\n")
    view = render_message(raw)
    assert view.body.truncated
    assert len(view.body.html) <= render.MAX_BODY
    assert view.attachments[0].size == 25 * 1024 * 1024
    assert preview(raw).startswith("ligne de texte ligne")
    assert len(attachment_content(raw, "2").data) == 25 * 1024 * 1024


# --- sanitising ------------------------------------------------------------------------------

XSS_VECTORS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://x.example/x.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "<img src=x onerror=alert(1)>",
    "<img src=javascript:alert(1)>",
    "<img src=JaVaScRiPt:alert(1)>",
    "<img src=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)>",
    "<img src=\"jav&#x09;ascript:alert(1)\">",
    "<img \"\"\"><script>alert(1)</script>\">",
    "<img src=/ onerror=\"alert(1)\">",
    "<img srcset=\"https://x.example/a.png 1x\">",
    "<img src=\"data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+\">",
    "<img src=\"data:image/png;base64,iVBORw0KGgo=\">",
    "<svg onload=alert(1)><script>alert(1)</script></svg>",
    "<svg><a xlink:href=\"javascript:alert(1)\"><text>x</text></a></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<body onload=alert(1)>",
    "<iframe src=\"https://x.example\"></iframe>",
    "<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>",
    "<object data=\"https://x.example/x.swf\"></object>",
    "<embed src=\"https://x.example/x.swf\">",
    "<form action=\"https://x.example\"><input name=p><button>go</button></form>",
    "<a href=\"javascript:alert(1)\">x</a>",
    "<a href=\"  javascript:alert(1)\">x</a>",
    "<a href=\"java\nscript:alert(1)\">x</a>",
    "<a href=\"vbscript:msgbox(1)\">x</a>",
    "<a href=\"data:text/html,<script>alert(1)</script>\">x</a>",
    "<a href=\"/logout\">relative</a>",
    "<a href=\"//x.example/p\">protocol relative</a>",
    "<a href=\"cid:part\">cid link</a>",
    "<div style=\"background:url(https://x.example/t.gif)\">x</div>",
    "<div style=\"width: expression(alert(1))\">x</div>",
    "<style>@import 'https://x.example/a.css'; body{background:url(https://x.example/b)}</style>",
    "<link rel=stylesheet href=\"https://x.example/a.css\">",
    "<table background=\"https://x.example/bg.gif\"><tr><td>x</td></tr></table>",
    "<td background=\"https://x.example/bg.gif\">x</td>",
    "<video poster=\"https://x.example/p.jpg\"><source src=\"https://x.example/v.mp4\"></video>",
    "<audio src=\"https://x.example/a.mp3\"></audio>",
    "<meta http-equiv=\"refresh\" content=\"0;url=https://x.example\">",
    "<base href=\"https://x.example/\">",
    "<input type=image src=\"https://x.example/i.png\">",
    "<details open ontoggle=alert(1)>",
    "<marquee onstart=alert(1)>x</marquee>",
    "<div id=\"login\" class=\"btn-primary\" onmouseover=\"alert(1)\">x</div>",
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
    "<!--<img src=\"--><img src=x onerror=alert(1)//\">",
    "<x onclick=alert(1)>x</x>",
    "<a href=\"https://ok.example/\" onclick=\"alert(1)\" target=\"_self\" rel=\"opener\">ok</a>",
    "<p><![CDATA[<script>alert(1)</script>]]></p>",
    "<template><script>alert(1)</script></template>",
    "<frameset onload=alert(1)>",
    "<isindex action=javascript:alert(1) type=image>",
    "<img src=\"http://x.example/pixel.gif\" width=1 height=1>",
    "<img src=\"HTTPS://X.EXAMPLE/pixel.gif\">",
    "<img src=\"//x.example/pixel.gif\">",
]


def _violations(html: str) -> list[str]:
    checks = {
        "script": r"<\s*script",
        "event handler": r"\son[a-z]+\s*=",
        "javascript url": r"(?:java|vb)script\s*:",
        "srcdoc": r"srcdoc",
        "style": r"<\s*style|\sstyle\s*=",
        "remote": r"(?:src|srcset|background|poster|data|action)\s*=\s*\"?\s*(?:https?:)?//",
        "data url": r"=\"?\s*data:",
        "iframe": r"<\s*(?:iframe|object|embed|form|input|base|meta|link|svg|math|frame)",
        "class or id": r"\s(?:class|id)\s*=",
        "relative href": r"href=\"(?!https?://|mailto:)",
    }
    return [name for name, pattern in checks.items() if re.search(pattern, html, re.I)]


@pytest.mark.parametrize("vector", XSS_VECTORS)
def test_no_xss_vector_survives(vector: str) -> None:
    view = render_message(html_message(vector), url)
    assert view.body.kind == "html"
    assert _violations(view.body.html) == []
    for anchor in re.findall(r"<a\b[^>]*>", view.body.html):
        assert 'target="_blank"' in anchor and 'rel="noopener noreferrer nofollow"' in anchor


def test_all_vectors_together_and_base64_encoded() -> None:
    body = base64.encodebytes("".join(XSS_VECTORS).encode()).decode()
    view = render_message(html_message(body, "Content-Transfer-Encoding: base64\n"), url)
    assert _violations(view.body.html) == []
    assert view.remote_content_blocked


@pytest.mark.parametrize("vector", [
    '<img src="https://x.example/p.gif">',
    '<div style="background:url(https://x.example/b.gif)">x</div>',
    "<style>@import 'https://x.example/a.css';</style>",
    '<table background="//x.example/bg.gif"><tr><td>x</td></tr></table>',
    '<link rel="stylesheet" href="https://x.example/a.css">',
])
def test_remote_content_is_reported_blocked(vector: str) -> None:
    view = render_message(html_message(vector))
    assert view.remote_content_blocked
    assert "x.example" not in view.body.html


def test_links_and_layout_survive() -> None:
    view = render_message(html_message(
        '<table width="600" bgcolor="#fff" cellpadding="2"><tr><td align="center" '
        'colspan="2"><a href="https://ok.example/?a=1&b=2">ok</a> '
        '<a href="mailto:a@b.mssante.fr">mail</a><font color="red">r</font></td></tr></table>'))
    assert view.body.html.rstrip() == (
        '<table width="600" bgcolor="#fff" cellpadding="2"><tbody><tr><td align="center" '
        'colspan="2"><a href="https://ok.example/?a=1&amp;b=2" target="_blank" '
        'rel="noopener noreferrer nofollow">ok</a> <a href="mailto:a@b.mssante.fr" '
        'target="_blank" rel="noopener noreferrer nofollow">mail</a><font color="red">r</font>'
        "</td></tr></tbody></table>")
    assert not view.remote_content_blocked


@pytest.mark.parametrize("bomb", ["<div>", "<div/>", "<blockquote><p>", "<b><div></b>"])
def test_nesting_bombs_are_cut_before_the_sanitiser(bomb: str) -> None:
    """html5ever, under nh3, is quadratic in nesting depth: the tags beyond MAX_TAGS
    never reach it."""
    view = render_message(html_message(bomb * 200_000))
    assert view.body.truncated
    assert view.body.html.count("<div>") + view.body.html.count("<p>") <= render.MAX_TAGS


def test_a_long_html_body_within_the_tag_limit_is_whole() -> None:
    body = "<tr><td>ligne</td></tr>" * 3000
    view = render_message(html_message(f"<table>{body}</table>"))
    assert not view.body.truncated and view.body.html.count("<td>ligne</td>") == 3000


def test_remote_detection_on_long_runs_of_white_space() -> None:
    """Two adjacent optional white space runs once made this search quadratic."""
    text = '<p src="' + " " * 20_000 + 'x">url(' + " " * 20_000 + "x)</p>"
    assert not render_message(html_message(text)).remote_content_blocked


def test_a_cid_that_names_no_image_part_is_removed() -> None:
    raw = crlf("Content-Type: multipart/related; boundary=r\n\n--r\nContent-Type: text/html\n\n"
               '<img src="cid:doc"><img src="cid:nothing">\n--r\n'
               "Content-Type: image/svg+xml\nContent-ID: <doc>\n\n<svg onload=alert(1)/>\n--r--\n")
    view = render_message(raw, url)
    assert view.body.html == "<img><img>"
    assert [(a.part_id, a.inline_image) for a in view.attachments] == [("2", False)]


# --- attachments ----------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "filename"), [
    ("Content-Disposition: attachment; filename=\"compte rendu.pdf\"", "compte rendu.pdf"),
    ("Content-Disposition: attachment; filename*=iso-8859-1'fr'r%E9sum%E9.pdf", "résumé.pdf"),
    ("Content-Disposition: attachment;\n filename*0*=UTF-8''comp%C3%A9;\n filename*1=te-rendu;"
     "\n filename*2*=.p%64f", "compéte-rendu.pdf"),
    ("Content-Disposition: attachment; filename=\"=?utf-8?b?w6l0w6kucGRm?=\"", "été.pdf"),
    ("Content-Type: application/pdf; name=\"=?iso-8859-1?q?r=E9sum=E9.pdf?=\"", "résumé.pdf"),
    ("Content-Disposition: attachment; filename=\"../../etc/passwd\"", "_.._etc_passwd"),
    ("Content-Disposition: attachment; filename=\"C:\\\\Windows\\\\x.exe\"", "C__Windows_x.exe"),
    ("Content-Disposition: attachment; filename*=UTF-8''invoice%E2%80%AEfdp.exe",
     "invoicefdp.exe"),
    ("Content-Disposition: attachment; filename*=UTF-8''a%00b%0d%0aContent-Type: x.txt",
     "a b Content-Type_ x.txt"),
    ("Content-Disposition: attachment; filename=\".htaccess\"", "htaccess"),
    ("Content-Disposition: attachment; filename=\"CON.txt\"", "_CON.txt"),
    ("Content-Disposition: attachment; filename*=bogus-charset''%FF%FE.bin", "��.bin"),
    ("Content-Disposition: attachment; filename*0*=UTF-8''a; filename*5=lost", "a"),
    ("Content-Disposition: attachment", "part-1.pdf"),
    ("Content-Disposition: attachment; filename=\"...\"", "part-1.pdf"),
])
def test_filenames_are_decoded_and_made_safe(header: str, filename: str) -> None:
    raw = crlf("Content-Type: multipart/mixed; boundary=m\n\n--m\n" + header
               + "\nContent-Type: application/pdf\n\n%PDF\n--m--\n")
    (attachment,) = render_message(raw).attachments
    assert attachment.filename == filename


def test_long_filename_keeps_its_extension() -> None:
    name = sanitise_filename("é" * 300 + ".pdf")
    assert name.endswith("é.pdf") and len(name.encode()) <= render.MAX_FILENAME
    assert sanitise_filename("x" * 100_000 + ".zip") == "x" * 251 + ".zip"
    assert sanitise_filename("y" * 300) == "y" * 255
    assert sanitise_filename("y" * 300 + ".averyveryverylongextension") == "y" * 255


@pytest.mark.parametrize(("filename", "inline", "header"), [
    ("IHE_XDM.ZIP", False, 'attachment; filename="IHE_XDM.ZIP"'),
    ("compte rendu.pdf", False, 'attachment; filename="compte rendu.pdf"'),
    ("résumé 100%.pdf", True,
     "inline; filename=\"resume 100_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20100%25.pdf"),
    ('a"b\\c\r\nSet-Cookie: x', False,
     'attachment; filename="a_b_c Set-Cookie_ x"'),
    ("", False, 'attachment; filename="download"'),
    ("日本.txt", False, "attachment; filename=\"??.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"),
])
def test_content_disposition(filename: str, inline: bool, header: str) -> None:
    value = content_disposition(filename, inline=inline)
    assert value == header
    assert value.isascii() and "\r" not in value and "\n" not in value


def test_attachment_content_by_part_id() -> None:
    got = attachment_content(HTML_WITH_IMAGE, "2")
    assert got.data == base64.b64decode("UEsDBBQAAAAIAA==")
    assert got.attachment.filename == "IHE_XDM.ZIP"
    assert got.content_disposition == 'attachment; filename="IHE_XDM.ZIP"'
    image = attachment_content(HTML_WITH_IMAGE, "1.2")
    assert image.data.startswith(b"\x89PNG")
    assert image.content_disposition.startswith("inline;")
    assert attachment_content(HTML_WITH_IMAGE, "1.1.2").attachment.content_type == "text/html"


@pytest.mark.parametrize("part_id", ["", "0", "3", "1", "1.1", "1.9", "2.1.1", "a", "1..2",
                                     "-1", "1.", "9" * 20, ".".join(["1"] * 100)])
def test_parts_that_cannot_be_downloaded(part_id: str) -> None:
    with pytest.raises(PartNotFound):
        attachment_content(HTML_WITH_IMAGE, part_id)


def test_the_single_part_of_a_simple_message() -> None:
    raw = crlf("Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\nJVBERg==\n")
    view = render_message(raw)
    assert view.body.kind == "none"
    assert [(a.part_id, a.size) for a in view.attachments] == [("1", 4)]
    assert attachment_content(raw, "1").data == b"%PDF"


# --- broken and hostile structures -----------------------------------------------------------


def test_deep_nesting_is_cut() -> None:
    depth = 1000
    raw = "".join(f"Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n"
                  for i in range(depth)) + "\ndeep\n"
    view = render_message(crlf(raw))
    assert view.incomplete
    assert view.body.kind == "none"


def test_thousands_of_parts_are_bounded() -> None:
    raw = crlf("Content-Type: multipart/mixed; boundary=p\n\n"
               + "--p\nContent-Type: application/octet-stream\n\nx\n" * 20_000 + "--p--\n")
    view = render_message(raw)
    assert view.incomplete
    assert len(view.attachments) == render.MAX_ATTACHMENTS


@pytest.mark.parametrize("raw", [
    b"Content-Type: multipart/mixed\r\n\r\nno boundary",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\nnever delimited",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nnot closed",
    b"Content-Type: text/plain; charset=no-such-charset\r\n\r\ncaf\xc3\xa9",
    b"Content-Type: text/plain; charset=punycode\r\n\r\n" + b"a" * 50_000 + b"-" + b"b" * 50_000,
    b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!Y2Fm\xff6Q=x=",
    b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=C3=A9=",
    b"Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644",
    b"Content-Type: text/html; charset=utf-16\r\n\r\n\xff\xfe<\x00b\x00",
    b"Content-Type: ;;;\r\nContent-Disposition: attachment; filename*0*=''\r\n\r\nx",
    b"\r\n\r\n\r\n",
    b"no header at all, no blank line",
    b"From: a\rb\x00\r\n\tcontinued\r\nSubject:\r\n\r\n",
])
def test_broken_messages_render(raw: bytes) -> None:
    view = render_message(raw, url)
    assert isinstance(view.body.html, str)
    view.body.html.encode()  # no lone surrogate: the page can be written
    view.subject.encode()
    assert isinstance(preview(raw), str)


def test_8bit_text_without_charset_is_read_as_utf8() -> None:
    assert render_message("Sujet\r\n\r\ncafé".encode()).body.html == "café"


# --- preview ------------------------------------------------------------------------------


def test_preview_prefers_text_and_collapses_white_space() -> None:
    assert preview(HTML_WITH_IMAGE) == "Bonjour, voir https://example.org/a."
    long = crlf("Content-Type: text/html\n\n<style>p{}</style><p>Bonjour&nbsp;&amp;\n\n  "
                + "mot " * 200 + "</p>\n")
    shown = preview(long)
    assert shown.startswith("Bonjour & mot mot")
    assert len(shown) <= render.PREVIEW_LENGTH + 1 and shown.endswith("mot…")
    assert preview(b"Content-Type: image/png\r\n\r\nxx") == ""


# --- any octets ---------------------------------------------------------------------------

_PIECES = st.sampled_from([
    b"\r\n", b"\n", b"--b\r\n", b"--b--\r\n", b"Content-Type: multipart/mixed; boundary=b\r\n",
    b"Content-Type: multipart/alternative; boundary=b\r\n", b"Content-Type: text/html\r\n",
    b"Content-Type: message/rfc822\r\n", b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n", b"Content-ID: <a>\r\n",
    b"Content-Disposition: attachment; filename*0*=utf-8''%e9; filename*1=x\r\n",
    b"Subject: =?utf-8?q?=C3?=\r\n", b"From: <a@b>\r\n", b"<img src=cid:a onerror=x>",
    b"<script>", b"=?", b"=\r\n", b"\xff\xfe", b"\x00",
])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_PIECES, st.binary(max_size=20)), max_size=40))
def test_any_octets_give_a_view(pieces: list[bytes]) -> None:
    raw = b"".join(pieces)
    view = render_message(raw, url)
    assert _violations(view.body.html) == [] or view.body.kind == "text"
    assert "<script" not in view.body.html.lower()
    for attachment in view.attachments:
        got = attachment_content(raw, attachment.part_id)
        assert got.attachment == attachment
        assert got.content_disposition.isascii()
    preview(raw).encode()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_random_octets_give_a_view(raw: bytes) -> None:
    view = render_message(raw, url)
    view.body.html.encode()
    assert isinstance(preview(raw), str)
