"""cydrop.torch.patch / unpatch: every torch dropout layer swapped for cydrop's, and back."""

import copy

import pytest

torch = pytest.importorskip("torch")

import cydrop  # noqa: E402
import cydrop.torch as ct  # noqa: E402

nn = torch.nn


class Net(nn.Module):
    def __init__(self, extra=False):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        if extra:
            self.added = nn.Dropout(0.3)
        self.drop = nn.Dropout(0.5, inplace=True)
        self.body = nn.Sequential(nn.Dropout1d(0.1), nn.Dropout2d(0.2), nn.Dropout3d(0.3))
        self.alpha = nn.AlphaDropout(0.4)
        self.feature = nn.FeatureAlphaDropout(0.6)

    def forward(self, x):
        h = self.drop(self.fc(x))
        if hasattr(self, "added"):
            h = self.added(h)
        return self.feature(self.alpha(h).reshape(2, 4, -1)).reshape(x.shape)


NAMES = ["drop", "body.0", "body.1", "body.2", "alpha", "feature"]


def test_replaces_every_dropout_in_place_keeping_p_inplace_and_mode():
    model = Net()
    model.body[1].eval()
    originals = dict(model.named_modules())
    replaced = ct.patch(model, seed=11)
    assert sorted(replaced) == sorted(NAMES)
    for name in NAMES:
        old, new = replaced[name], model.get_submodule(name)
        assert old is originals[name]
        assert type(new) is getattr(ct, type(old).__name__)
        assert isinstance(new, type(old))
        assert (new.p, new.inplace, new.training) == (old.p, old.inplace, old.training)
        assert new.stream.seed == cydrop.derive_seed(11, name)
    assert model.fc is originals["fc"]


def test_state_dict_is_unchanged():
    model = Net()
    keys = list(model.state_dict())
    ct.patch(model, seed=1)
    assert list(model.state_dict()) == keys
    model.load_state_dict(Net().state_dict())


def test_adding_a_layer_elsewhere_keeps_the_other_masks():
    a, b = Net(), Net(extra=True)
    b.load_state_dict(a.state_dict())
    ct.patch(a, seed=3)
    ct.patch(b, seed=3)
    x = torch.ones(2, 8)
    assert torch.equal(a.drop(x.clone()), b.drop(x.clone()))
    assert torch.equal(a.alpha(x), b.alpha(x))
    assert b.added.stream.seed == cydrop.derive_seed(3, "added")


def test_successive_calls_draw_fresh_reproducible_masks():
    a, b = Net(), Net()
    b.load_state_dict(a.state_dict())
    ct.patch(a, seed=5)
    ct.patch(b, seed=5)
    x = torch.randn(2, 8)
    ya, yb = [a(x) for _ in range(3)], [b(x) for _ in range(3)]
    assert all(torch.equal(u, v) for u, v in zip(ya, yb))
    assert not torch.equal(ya[0], ya[1])
    step = cydrop.SeedStream(0)
    step.next(16)
    assert a.drop.stream.offset == 3 * step.offset


def test_unpatch_restores_the_originals_with_the_current_mode():
    model = Net()
    replaced = ct.patch(model, seed=2)
    model.eval()
    model.drop.p = 0.25
    removed = ct.unpatch(model)
    assert sorted(removed) == sorted(NAMES)
    for name in NAMES:
        assert model.get_submodule(name) is replaced[name]
        assert not model.get_submodule(name).training
    assert model.drop.p == 0.25
    assert ct.unpatch(model) == {}
    ct.patch(model, seed=2)                         # patchable again


def test_a_module_reached_by_two_names_stays_one_module():
    shared = nn.Dropout(0.5)
    model = nn.Sequential(shared, nn.Linear(2, 2), shared)
    replaced = ct.patch(model, seed=0)
    assert sorted(replaced) == ["0", "2"] and model[0] is model[2]
    assert model[0].stream.seed == cydrop.derive_seed(0, "0")
    ct.unpatch(model)
    assert model[0] is shared and model[2] is shared


def test_subclasses_and_cydrop_modules_are_left_alone():
    class MyDropout(nn.Dropout):
        pass

    model = nn.Sequential(MyDropout(0.5), ct.Dropout(0.5, seed=1), nn.Linear(2, 2))
    assert ct.patch(model, seed=0) == {}
    assert type(model[0]) is MyDropout and model[1].stream.seed == 1


@pytest.mark.parametrize("bad, exc, match", [
    ({"model": "net"}, TypeError, "torch.nn.Module"),
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": 2**64}, ValueError, "seed"),
    ({"seed": "1"}, TypeError, "seed"),
    ({"seed": 1.0}, TypeError, "seed"),
    ({"seed": None}, TypeError, "seed"),
    ({"model": nn.Dropout(0.5)}, ValueError, "itself a Dropout"),
])
def test_bad_input_is_refused_and_changes_nothing(bad, exc, match):
    model = Net()
    before = dict(model.named_modules())
    kwargs = {"seed": 1}
    kwargs.update({k: v for k, v in bad.items() if k == "seed"})
    target = bad.get("model", model)
    with pytest.raises(exc, match=match):
        ct.patch(target, **kwargs)
    assert dict(model.named_modules()) == before


def test_patching_twice_is_an_error_and_changes_nothing():
    model = Net()
    ct.patch(model, seed=1)
    now = dict(model.named_modules())
    with pytest.raises(RuntimeError, match="already patched"):
        ct.patch(model, seed=2)
    assert dict(model.named_modules()) == now


def test_deepcopy_of_a_patched_model_unpatches_to_copies():
    model = Net()
    ct.patch(model, seed=1)
    clone = copy.deepcopy(model)
    removed = ct.unpatch(clone)
    assert sorted(removed) == sorted(NAMES) and type(clone.drop) is nn.Dropout
    assert type(model.drop) is ct.Dropout
