"""Demo data for `make run`: loaded at every start, changed only the first time.

Every command here has a fixed key and every id is derived from a fixed key, so a second run
collides with the first one and returns its result: nothing changes. Add stations, prices,
coupons... to `load_demo` the same way as those features land.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from infra.bootstrap import Core
from ledger.domain.member import Member
from ledger.services.referrals import create_default_template

# Sign in as the demo member: mint a code at the login simulator,
#   POST {simulator}/wechat/sim/codes {"openid": DEMO_OPENID}  -> {"code": ...}
# then POST /v1/auth/wechat-login {"code": ...} on the API.
DEMO_OPENID = "demo-openid-member-1"
DEMO_MEMBER_ID = Member.create_id(DEMO_OPENID)
# The same member from the Alipay mini-program:
#   POST {simulator}/alipay/sim/auth-codes {"user_id": DEMO_ALIPAY_USER_ID} -> {"code": ...}
# then POST /v1/auth/alipay-login {"auth_code": ...}.
DEMO_ALIPAY_USER_ID = "2088000000000099"
DEMO_TOP_UP_KEY = "demo:member-1:wechat:top-up-1"
DEMO_TOP_UP_FEN = 500_00
DEMO_TOP_UP_BONUS_FEN = 50_00
# (code, name, address, lat_e6, lng_e6 in GCJ-02, {grade: (nozzles, price fen per litre)})
DEMO_STATIONS = (
    (
        "demo-cd-1",
        "Tianfu Square Station",
        "1 Renmin South Rd, Chengdu",
        30_657_420,
        104_065_840,
        {"92#": ([1, 2], 768), "95#": ([3, 4], 821), "0#": ([5], 745)},
    ),
    (
        "demo-cd-2",
        "Jinjiang Station",
        "88 Dongda St, Chengdu",
        30_651_100,
        104_081_900,
        {"92#": ([1, 2, 3], 762), "95#": ([4], 815)},
    ),
    (
        "demo-cd-3",
        "Wuhou Station",
        "5 Wuhou Temple St, Chengdu",
        30_643_600,
        104_047_500,
        {"92#": ([1], 771), "95#": ([2], 826), "98#": ([3], 912)},
    ),
)


@dataclass(frozen=True)
class DemoData:
    member_id: UUID
    card_fen: int
    card_bonus_fen: int
    station_ids: tuple[UUID, ...] = ()


def load_demo(core: Core) -> DemoData:
    """A demo member whose fuel card was topped up once (500.00 CNY plus 50.00 bonus)."""
    core.members.sign_in(DEMO_OPENID, None)
    core.members.update_profile(
        DEMO_MEMBER_ID, nickname="Demo Member", key="demo:member-1:profile-1"
    )
    core.members.link_alipay(DEMO_MEMBER_ID, DEMO_ALIPAY_USER_ID)
    top_up = core.wallets.top_up(
        key=DEMO_TOP_UP_KEY,
        member_id=DEMO_MEMBER_ID,
        amount=DEMO_TOP_UP_FEN,
        bonus=DEMO_TOP_UP_BONUS_FEN,
    )
    load_demo_coupons(core)
    return DemoData(
        member_id=DEMO_MEMBER_ID,
        card_fen=int(top_up["card"]),
        card_bonus_fen=int(top_up["card_bonus"]),
        station_ids=load_demo_stations(core),
    )


def load_demo_coupons(core: Core) -> None:
    """The default referral coupon (10 off 100, 30 days), and a welcome coupon for the demo
    member (5% off, at most 20.00)."""
    create_default_template(core.coupons)
    welcome = core.coupons.create_template(
        key="demo:welcome",
        title="Welcome: 5% off",
        kind="percent",
        percent_off_bps=500,
        max_discount_fen=20_00,
        valid_days=30,
        total_quantity=1_000,
    )
    core.coupons.issue(
        template_id=UUID(welcome["template_id"]),
        member_id=DEMO_MEMBER_ID,
        issue_key="demo:welcome:member-1",
    )


def load_demo_stations(core: Core) -> tuple[UUID, ...]:
    """Three stations in Chengdu with grades, nozzles and prices; fixed keys throughout."""
    ids = []
    for code, name, address, lat_e6, lng_e6, grades in DEMO_STATIONS:
        station = core.catalog.register(
            code=code,
            name=name,
            address=address,
            phone="+86 28 8000 0000",
            lat_e6=lat_e6,
            lng_e6=lng_e6,
            settlement_rate_bps=80,
            rating=45,
        )
        station_id = UUID(station["station_id"])
        for grade, (nozzles, price) in grades.items():
            core.catalog.configure_grade(station_id, grade, nozzles, key=f"demo:{code}:{grade}")
            core.catalog.change_price(
                station_id, grade, price, "demo", key=f"demo:{code}:{grade}:price-1"
            )
        ids.append(station_id)
    return tuple(ids)
