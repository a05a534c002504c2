"""The member's referral code and poster (M10): a PNG with a QR code that opens the
mini-program with the signed code, the member's nickname and the app's name.

Text is drawn with Pillow's default font unless POSTER_FONT_PATH names a font with CJK
glyphs; the default font has none, so non-ASCII text is then folded to ASCII (and a
nickname with nothing left becomes "Member XXXXXX") rather than failing or drawing boxes.
The link and code are also in the PNG's text chunks, for tests and for support staff.
"""

from __future__ import annotations

import io
import unicodedata
from pathlib import Path
from typing import Any
from uuid import UUID

import segno
from fastapi import APIRouter, Request, Response
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from api.auth import CurrentMember
from projections.members import member_row

router = APIRouter(prefix="/v1/me", tags=["referral"])

WIDTH, HEIGHT, QR_SIDE = 720, 1080, 480
BACKGROUND, INK, ACCENT = (255, 250, 240), (40, 40, 40), (214, 69, 65)
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def referral_link(base: str, code: str) -> str:
    return f"{base}{code}"


def ascii_safe(text: str, fallback: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    folded = " ".join(folded.split())
    return folded or fallback


def _font(path: Path | None, size: int) -> tuple[Font, bool]:
    """A font and whether it can draw any text (a configured one) or ASCII only."""
    if path is not None and path.is_file():
        try:
            return ImageFont.truetype(str(path), size), True
        except OSError:
            pass
    return ImageFont.load_default(size=size), False


def _centered(
    draw: ImageDraw.ImageDraw, y: int, text: str, font: Font, full: bool, fallback: str, fill: Any
) -> None:
    shown = text if full else ascii_safe(text, fallback)
    try:
        left, top, right, bottom = draw.textbbox((0, 0), shown, font=font)
        draw.text(((WIDTH - (right - left)) // 2, y), shown, font=font, fill=fill)
    except (UnicodeError, ValueError, OSError):
        shown = ascii_safe(shown, fallback)
        left, top, right, bottom = draw.textbbox((0, 0), shown, font=font)
        draw.text(((WIDTH - (right - left)) // 2, y), shown, font=font, fill=fill)


def render_poster(
    *,
    app_name: str,
    nickname: str,
    link: str,
    code: str,
    font_path: Path | None = None,
    fallback_name: str = "A friend",
) -> bytes:
    symbol = segno.make(link, error="m")
    modules, _ = symbol.symbol_size(scale=1, border=2)
    qr_png = io.BytesIO()
    symbol.save(qr_png, kind="png", scale=max(1, QR_SIDE // modules), border=2)  # whole pixels
    qr = Image.open(io.BytesIO(qr_png.getvalue())).convert("RGB")

    poster = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(poster)
    draw.rectangle((0, 0, WIDTH, 180), fill=ACCENT)
    title, full = _font(font_path, 56)
    body, _ = _font(font_path, 34)
    small, _ = _font(font_path, 22)
    _centered(draw, 60, app_name, title, full, "Fuel", (255, 255, 255))
    _centered(draw, 230, nickname, body, full, fallback_name, INK)
    _centered(draw, 280, "invites you to fuel up and save", body, full, "", INK)
    poster.paste(qr, ((WIDTH - qr.width) // 2, 360 + (QR_SIDE - qr.height) // 2))
    _centered(draw, 870, "Scan to join: you both get coupons", body, full, "", ACCENT)
    _centered(draw, 940, f"Code {code}", small, full, "", INK)

    info = PngInfo()
    info.add_text("referral_link", link)
    info.add_text("referral_code", code)
    out = io.BytesIO()
    poster.save(out, format="PNG", pnginfo=info, optimize=True)
    return out.getvalue()


def _nickname(request: Request, member_id: UUID) -> str | None:
    core = request.app.state.core
    row = member_row(core.read_pool, member_id)
    return row["nickname"] if row else core.members.get(member_id)["nickname"]


@router.get("/referral")
def my_referral(member: CurrentMember, request: Request) -> dict[str, Any]:
    core = request.app.state.core
    code = core.referrals.code_for(member.id)
    return {
        "referral_code": code,
        "link": referral_link(core.settings.referral_link_base, code),
        "poster": "/v1/me/referral-poster",
    }


@router.get(
    "/referral-poster",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The poster, a PNG"}},
)
def my_referral_poster(member: CurrentMember, request: Request) -> Response:
    core = request.app.state.core
    code = core.referrals.code_for(member.id)
    label = f"Member {member.id.hex[:6].upper()}"
    png = render_poster(
        app_name=core.settings.app_name,
        nickname=_nickname(request, member.id) or label,
        fallback_name=label,
        link=referral_link(core.settings.referral_link_base, code),
        code=code,
        font_path=core.settings.poster_font_path,
    )
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})
