"""The points-mall catalogue (SPEC A1): categories, goods and their stock, publishing."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from ledger.commands import CommandRunner, UnitOfWork
from ledger.domain.mall import MallCategory, MallGoods, MallStock, check_goods
from ledger.errors import GoodsNotAvailable, InvalidAmount, NotFound


def goods_view(goods: MallGoods, stock: MallStock | None) -> dict[str, Any]:
    return {
        "goods_id": str(goods.id),
        "category_id": goods.category_id,
        "name": goods.name,
        "images": list(goods.images),
        "description": goods.description,
        "points_price": goods.points_price,
        "cash_price_fen": goods.cash_price_fen,
        "published": goods.published,
        "stock": stock.available if stock else 0,
    }


class MallCatalogue:
    runner: CommandRunner

    # -- catalogue (A1) ---------------------------------------------------------------------

    def create_category(self, *, key: str, name: str, sort: int = 0) -> dict[str, Any]:
        category_id = MallCategory.create_id(key)

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            c = uow.add(MallCategory(key=key, name=name.strip(), sort=sort))
            return {"category_id": str(c.id), "name": c.name, "sort": c.sort, "active": True}

        if not name.strip():
            raise InvalidAmount("a category needs a name")
        return self.runner.run(category_id, ["category", name, sort], decide)

    def update_category(
        self,
        category_id: UUID,
        *,
        name: str | None = None,
        sort: int | None = None,
        active: bool | None = None,
    ) -> dict[str, Any]:
        def decide(uow: UnitOfWork) -> dict[str, Any]:
            c = self._get(uow, MallCategory, category_id)
            c.update(name=name.strip() if name else None, sort=sort, active=active)
            return {"category_id": str(c.id), "name": c.name, "sort": c.sort, "active": c.active}

        payload = ["category", str(category_id), name, sort, active]
        return self.runner.run(uuid4(), payload, decide)

    def create_goods(self, *, key: str, stock: int = 0, **fields: Any) -> dict[str, Any]:
        fields = check_goods(dict(fields))
        goods_id = MallGoods.create_id(key)

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            if fields.get("category_id"):
                self._get(uow, MallCategory, UUID(fields["category_id"]))
            goods = uow.add(
                MallGoods(
                    key=key,
                    category_id=fields.get("category_id"),
                    name=fields["name"].strip(),
                    images=fields.get("images", []),
                    description=fields.get("description", ""),
                    points_price=fields.get("points_price", 0),
                    cash_price_fen=fields.get("cash_price_fen", 0),
                )
            )
            st = uow.add(MallStock(goods_id=goods.id, quantity=stock))
            return goods_view(goods, st)

        if not isinstance(stock, int) or stock < 0:
            raise InvalidAmount("stock must be a whole number, not negative")
        payload = ["goods", sorted(fields.items()), stock]
        return self.runner.run(goods_id, payload, decide)

    def update_goods(
        self, goods_id: UUID, *, stock: int | None = None, **fields: Any
    ) -> dict[str, Any]:
        def decide(uow: UnitOfWork) -> dict[str, Any]:
            goods = self._get(uow, MallGoods, goods_id)
            if fields.get("category_id"):
                self._get(uow, MallCategory, UUID(str(fields["category_id"])))
            goods.update(**fields)
            st = self._get(uow, MallStock, goods.stock_id)
            if stock is not None:
                st.set_to(stock)
            return goods_view(goods, st)

        payload = ["goods", str(goods_id), sorted(fields.items()), stock]
        return self.runner.run(uuid4(), payload, decide)

    def set_published(self, goods_id: UUID, published: bool) -> dict[str, Any]:
        def decide(uow: UnitOfWork) -> dict[str, Any]:
            goods = self._get(uow, MallGoods, goods_id)
            if published:
                goods.publish()
            else:
                goods.withdraw()
            return goods_view(goods, uow.find(MallStock, goods.stock_id))

        payload = ["publish", str(goods_id), published]
        return self.runner.run(uuid4(), payload, decide)

    # -- reading the domain -----------------------------------------------------------------

    @staticmethod
    def _get(uow: UnitOfWork, cls: type[Any], aggregate_id: UUID) -> Any:
        try:
            found = uow.find(cls, aggregate_id)
        except TypeError:
            found = None
        if found is None:
            if cls is MallGoods:
                raise GoodsNotAvailable(f"no goods {aggregate_id}", goods_id=str(aggregate_id))
            raise NotFound(f"no {cls.__name__} {aggregate_id}")
        return found
