def test_stack(fresh_ovn):
    fresh_ovn.nbctl("lr-add", "r1")
    fresh_ovn.sync()
    assert fresh_ovn.nb_rows("Logical_Router")[0]["name"] == "r1"
    assert fresh_ovn.nb_tcp > 0
