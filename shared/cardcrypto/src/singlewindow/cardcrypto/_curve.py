"""Point arithmetic on the SM2 recommended curve (GB/T 32918.5), in Jacobian coordinates."""

from __future__ import annotations

from functools import cache

# Python integers are not constant-time. That is acceptable for the development CA and the
# virtual card; real E-Port cards compute inside the chip.

P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0

Affine = tuple[int, int]
Jacobian = tuple[int, int, int]

INFINITY: Jacobian = (1, 1, 0)
_WINDOW_BITS = 4
_WINDOWS = 256 // _WINDOW_BITS


def is_on_curve(point: Affine) -> bool:
    """Whether an affine point lies on the curve (the cofactor is 1, so this is full validation)."""
    x, y = point
    if not (0 <= x < P and 0 <= y < P):
        return False
    return (y * y - (x * x * x + A * x + B)) % P == 0


def to_affine(point: Jacobian) -> Affine | None:
    """The affine form of a Jacobian point, or None for the point at infinity."""
    x, y, z = point
    if z == 0:
        return None
    z_inv = pow(z, -1, P)
    z_inv2 = z_inv * z_inv % P
    return x * z_inv2 % P, y * z_inv2 * z_inv % P


def double(point: Jacobian) -> Jacobian:
    """2·point; dbl-2001-b, valid because a = -3 on this curve."""
    x1, y1, z1 = point
    if z1 == 0 or y1 == 0:
        return INFINITY
    delta = z1 * z1 % P
    gamma = y1 * y1 % P
    beta = x1 * gamma % P
    alpha = 3 * (x1 - delta) * (x1 + delta) % P
    x3 = (alpha * alpha - 8 * beta) % P
    z3 = ((y1 + z1) * (y1 + z1) - gamma - delta) % P
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % P
    return x3, y3, z3


def add_affine(point: Jacobian, other: Affine) -> Jacobian:
    """point + other, where other is affine; madd-2007-bl with the special cases handled."""
    x1, y1, z1 = point
    x2, y2 = other
    if z1 == 0:
        return x2, y2, 1
    z1z1 = z1 * z1 % P
    u2 = x2 * z1z1 % P
    s2 = y2 * z1 * z1z1 % P
    h = (u2 - x1) % P
    r = 2 * (s2 - y1) % P
    if h == 0:
        return double(point) if r == 0 else INFINITY
    hh = h * h % P
    i = 4 * hh % P
    j = h * i % P
    v = x1 * i % P
    x3 = (r * r - j - 2 * v) % P
    y3 = (r * (v - x3) - 2 * y1 * j) % P
    z3 = ((z1 + h) * (z1 + h) - z1z1 - hh) % P
    return x3, y3, z3


@cache
def _base_table() -> tuple[tuple[Affine, ...], ...]:
    # table[w][d - 1] = d·16^w·G, so k·G needs one addition per nibble of k and no doubling.
    table: list[tuple[Affine, ...]] = []
    base: Jacobian = (GX, GY, 1)
    for _ in range(_WINDOWS):
        base_affine = to_affine(base)
        assert base_affine is not None
        row: list[Affine] = [base_affine]
        acc = base
        for _ in range(2, 1 << _WINDOW_BITS):
            acc = add_affine(acc, base_affine)
            acc_affine = to_affine(acc)
            assert acc_affine is not None
            row.append(acc_affine)
        table.append(tuple(row))
        for _ in range(_WINDOW_BITS):
            base = double(base)
    return tuple(table)


def multiply_base(k: int) -> Jacobian:
    """k·G using the precomputed table of the generator."""
    table = _base_table()
    acc = INFINITY
    k %= N
    mask = (1 << _WINDOW_BITS) - 1
    for window in range(_WINDOWS):
        digit = (k >> (window * _WINDOW_BITS)) & mask
        if digit:
            acc = add_affine(acc, table[window][digit - 1])
    return acc


def multiply(k: int, point: Affine) -> Jacobian:
    """k·point for an arbitrary affine point, with a fixed 4-bit window."""
    k %= N
    multiples: list[Affine] = [point]
    acc = (point[0], point[1], 1)
    for _ in range(2, 1 << _WINDOW_BITS):
        acc = add_affine(acc, point)
        acc_affine = to_affine(acc)
        if acc_affine is None:
            # Only a point of small order could get here; on this prime-order curve none exists.
            raise ValueError("point is not in the prime-order group")
        multiples.append(acc_affine)
    result = INFINITY
    mask = (1 << _WINDOW_BITS) - 1
    for window in reversed(range(_WINDOWS)):
        for _ in range(_WINDOW_BITS):
            result = double(result)
        digit = (k >> (window * _WINDOW_BITS)) & mask
        if digit:
            result = add_affine(result, multiples[digit - 1])
    return result
