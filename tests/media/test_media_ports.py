"""Port pair allocation from a range."""
import pytest

from callgw.media.ports import PortRange, PortsExhausted


def test_even_ports_with_odd_neighbour_in_range():
    ports = PortRange(20001, 20010)
    got = [ports.allocate() for _ in range(len(ports))]
    assert got == [20002, 20004, 20006, 20008]
    assert all(p % 2 == 0 and p + 1 <= 20010 for p in got)
    with pytest.raises(PortsExhausted):
        ports.allocate()


def test_release_returns_the_pair_last_and_ignores_strangers():
    ports = PortRange(30000, 30007)
    a = ports.allocate()
    ports.release(a)
    ports.release(12345)
    assert ports.in_use == 0
    assert [ports.allocate() for _ in range(4)] == [30002, 30004, 30006, 30000]


def test_bad_range():
    with pytest.raises(ValueError):
        PortRange(5000, 5000)


def test_a_start_point_rotates_the_order_and_wraps():
    ports = PortRange(30000, 30007, start=1)        # pairs 30000 ... 30006: from the second
    assert [ports.allocate() for _ in range(4)] == [30002, 30004, 30006, 30000]
    ports = PortRange(30000, 30007, start=6)        # past the end: wraps (6 = 4 + 2)
    assert [ports.allocate() for _ in range(4)] == [30004, 30006, 30000, 30002]
