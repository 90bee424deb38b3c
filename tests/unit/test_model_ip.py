"""The model's dotted-quad fast path parses exactly what `ipaddress.ip_address` parses."""

import ipaddress
import itertools

import pytest

from vegd.model.parse import _ip

EDGES = ["1.2.3.4", "255.255.255.255", "0.0.0.0", "01.2.3.4", "1.2.3.04", "256.1.1.1",
         "1.2.3", "1.2.3.4.5", "10.0.0.1 ", " 10.0.0.1", "1.2.3.4\n", "fd00::1",
         "::ffff:1.2.3.4", "", "a.b.c.d", "1..2.3", "٣.1.1.1"]
OCTETS = ["0", "9", "10", "99", "100", "199", "200", "249", "250", "255", "256", "300", "00",
          "010"]


def _parse(parse, text):
    try:
        value = parse(text)
    except ValueError:
        return "refused"
    return type(value), value


@pytest.mark.parametrize("text", EDGES + [".".join(q) for q in
                                          itertools.product(OCTETS, ["1"], ["2"], OCTETS)])
def test_same_as_ipaddress(text):
    assert _parse(_ip, text) == _parse(ipaddress.ip_address, text)
