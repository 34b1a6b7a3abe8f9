"""PyTorch's own dropout module tests, run against cydrop.torch's modules.

Re-typed from pytorch/pytorch ``test/nn/test_dropout.py`` (classes ``TestDropoutNN`` and
``TestDropoutNNDeviceType``, CPU device), keeping the test logic. Substitutions:

* ``nn.Dropout*``, ``nn.AlphaDropout``, ``nn.FeatureAlphaDropout`` and ``F.dropout`` are
  cydrop's (``cydrop.torch``);
* ``freeze_rng_state()`` (torch's RNG) becomes ``freeze_stream(module)``: the cydrop module's
  own stream is saved and restored, which is what freezing the RNG does to torch's module;
* ``self.assertEqual`` is ``torch.testing.assert_close`` (``assertNotEqual``: its negation),
  ``assertLess`` / ``assertTrue`` / ``assertRaises*`` / ``assertWarnsRegex`` are pytest's;
* ``set_default_dtype`` is a local twin of torch's test helper;
* the RNG seeding of torch's ``TestCase`` is the fixture ``_seeded`` (it also fixes the
  modules' default seeds, drawn from the OS otherwise, to derive_seed(0, k) for the k-th;
  like torch's own, the statistical checks (a mean within 0.05 of 150 channel draws) hold
  for these fixed seeds, not for every seed);
* the CUDA-only ``test_native_dropout_corner_case`` is left out (CPU only here).
"""

import contextlib
import itertools
import random
from itertools import product

import pytest

torch = pytest.importorskip("torch")

import cydrop  # noqa: E402
import cydrop.torch as nn  # noqa: E402  (the modules under test, in torch.nn's place)
from cydrop import _seeds  # noqa: E402

F = nn                      # F.dropout is cydrop.torch.dropout
device = "cpu"


def assert_equal(a, b, **kw):
    torch.testing.assert_close(a, b, **kw)


def assert_not_equal(a, b, **kw):
    with pytest.raises(AssertionError):
        torch.testing.assert_close(a, b, **kw)


@contextlib.contextmanager
def freeze_stream(module):
    state = module.stream.get_state()
    try:
        yield
    finally:
        module.stream.set_state(state)


@contextlib.contextmanager
def set_default_dtype(dtype):
    saved = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


@pytest.fixture(autouse=True)
def _seeded(monkeypatch):
    # torch's TestCase seeds its RNGs before every test; the analogue here seeds Python's
    # random, torch's generator (for the inputs) and the modules' default seeds
    random.seed(0)
    counter = itertools.count()
    monkeypatch.setattr(_seeds, "fresh_seed", lambda: cydrop.derive_seed(0, next(counter)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


# ---------------------------------------------------------------- TestDropoutNN

def _test_alpha_dropout(cls, input):
    mean = input.mean()
    std = input.std()

    for p in [0.2, 0.5, 0.8]:
        module = cls(p)
        input_var = input.detach().clone().requires_grad_()
        output = module(input_var)
        # output mean should be close to input mean
        assert abs(output.data.mean() - mean) < 0.1
        # output std should be close to input std
        assert abs(output.data.std() - std) < 0.1
        output.backward(input)


def test_AlphaDropout():
    # generate random tensor with zero mean and unit std
    input = torch.randn(5000)
    _test_alpha_dropout(nn.AlphaDropout, input)


def test_FeatureAlphaDropout():
    b = random.randint(1, 5)
    w = random.randint(1, 5)
    h = random.randint(1, 5)
    d = random.randint(1, 2)
    num_features = 1000
    input = torch.randn(num_features, b, d, w, h)
    _test_alpha_dropout(nn.FeatureAlphaDropout, input)

    # no batch dims
    input = torch.randn(50, 20, 64, 64)
    _test_alpha_dropout(nn.FeatureAlphaDropout, input)


def test_invalid_dropout_p():
    v = torch.ones(1)
    pytest.raises(ValueError, lambda: nn.Dropout(-0.1))
    pytest.raises(ValueError, lambda: nn.Dropout(1.1))
    pytest.raises(ValueError, lambda: nn.Dropout1d(-0.1))
    pytest.raises(ValueError, lambda: nn.Dropout1d(1.1))
    pytest.raises(ValueError, lambda: nn.Dropout2d(-0.1))
    pytest.raises(ValueError, lambda: nn.Dropout2d(1.1))
    pytest.raises(ValueError, lambda: nn.Dropout3d(-0.1))
    pytest.raises(ValueError, lambda: nn.Dropout3d(1.1))
    pytest.raises(ValueError, lambda: F.dropout(v, -0.1))
    pytest.raises(ValueError, lambda: F.dropout(v, 1.1))


# ---------------------------------------------------------------- TestDropoutNNDeviceType

def _test_dropout(cls, device, input, memory_format=torch.contiguous_format):
    p = 0.2
    input = input.to(device).fill_(1 - p)

    module = cls(p)
    input_var = input.clone(memory_format=memory_format).requires_grad_()
    output = module(input_var)
    assert output.is_contiguous(memory_format=memory_format)
    assert abs(output.data.mean() - (1 - p)) < 0.05
    output.backward(input)
    assert input_var.grad.is_contiguous(memory_format=memory_format)
    assert abs(input_var.grad.data.mean() - (1 - p)) < 0.05

    module = cls(p, True)
    input_var = input.clone(memory_format=memory_format).requires_grad_()
    output = module(input_var + 0)
    assert output.is_contiguous(memory_format=memory_format)
    assert abs(output.data.mean() - (1 - p)) < 0.05
    output.backward(input)
    assert input_var.grad.is_contiguous(memory_format=memory_format)
    assert abs(input_var.grad.data.mean() - (1 - p)) < 0.05

    # check eval mode doesn't change anything
    for inplace in [True, False]:
        module = cls(p, inplace).eval()
        assert_equal(input, module(input))

    # Check that these don't raise errors
    module.__repr__()
    str(module)


def _test_dropout_discontiguous(cls, device, memory_format=torch.contiguous_format):
    # dropout preserves the layout and data for different memory formats: same values for the
    # output of dropout when the probability of dropout is 0 or very close to 0
    close_to_zero_p = 1e-10  # Should be almost zero but not zero, as for p=0 different path
    for p in [0, close_to_zero_p]:
        inp = torch.ones(2, 3, 3, 3, device=device)
        inp_discontiguous = torch.empty(2, 3, 3, 6, device=device,
                                        memory_format=memory_format)[..., ::2]
        inp_discontiguous.copy_(inp)
        mod = cls(p=p)
        out = mod(inp_discontiguous)
        if p != 0:  # Zero will keep strides as is based on input.
            assert out.is_contiguous(memory_format=memory_format)
        assert_equal(inp_discontiguous, out)


def _test_dropout_stride_mean_preserve(cls, device):
    def invert_perm(p):
        d = {x: i for i, x in enumerate(p)}
        return (d[0], d[1], d[2], d[3])

    inp = torch.ones(2, 3, 4, 5, device=device)
    shifts = [(0, 0), (1, 0), (0, 1), (1, 1)]
    for perm in itertools.permutations((0, 1, 2, 3), r=4):
        for shift in shifts:
            for p in [1e-10, 0.3, 0.5, 0.7]:
                mod = cls(p=p)
                permuted_inp = inp.permute(perm).contiguous().permute(invert_perm(perm))
                permuted_inp = permuted_inp[shift[0]:, shift[1]:, :, :]
                out = mod(permuted_inp)

                assert out.permute(perm).is_contiguous()
                assert_equal(inp.mean(), out.mean(), rtol=0.5, atol=0.5)
                if p == 1e-10:
                    assert_equal(permuted_inp, out)
                else:
                    assert_not_equal(permuted_inp, out)


def test_Dropout():
    input = torch.empty(1000)
    _test_dropout(nn.Dropout, device, input)

    _test_dropout_discontiguous(nn.Dropout, device)
    _test_dropout_discontiguous(nn.Dropout, device, memory_format=torch.channels_last)

    _test_dropout_stride_mean_preserve(nn.Dropout, device)

    input = input.bfloat16()
    _test_dropout(nn.Dropout, device, input)


def _test_dropoutNd_no_batch(dropout, input):
    input_clone = input.clone()
    with freeze_stream(dropout):
        res_no_batch = dropout(input)

    with freeze_stream(dropout):
        res_batched = dropout(input_clone.unsqueeze(0)).squeeze(0)

    assert_equal(res_no_batch, res_batched)


def _test_dropoutNd_channel_zero(dropout, input):
    # the number of zeros in a channel is 0 or the number of elements in the channel for a
    # fully positive input tensor
    shape = input.shape
    B = shape[0]
    C = shape[1]
    channel_numel = torch.tensor(shape[2:]).prod()
    result = dropout(input)

    for b, c in product(range(B), range(C)):
        assert result[b, c].count_nonzero() in (0, channel_numel)


def test_Dropout1d():
    with set_default_dtype(torch.double):
        N, C, L = random.randint(10, 15), random.randint(10, 15), random.randint(10, 15)
        input = torch.empty(N, C, L)
        _test_dropout(nn.Dropout1d, device, input)

        with pytest.raises(RuntimeError, match="Expected 2D or 3D input, but received a 4D input"):
            nn.Dropout1d(p=0.5)(torch.rand(1, 2, 2, 2, device=device))

        with pytest.raises(RuntimeError, match="Expected 2D or 3D input, but received a 1D input"):
            nn.Dropout1d(p=0.5)(torch.rand(2, device=device))

        # no batch dims
        input = torch.rand(50, 2, device=device)
        _test_dropoutNd_no_batch(nn.Dropout1d(p=0.5), input)
        _test_dropoutNd_no_batch(nn.Dropout1d(p=0.5, inplace=True), input)

        # check that complete channels are dropped
        input = torch.ones(10, 4, 2, device=device)
        _test_dropoutNd_channel_zero(nn.Dropout1d(p=0.5), input)
        _test_dropoutNd_channel_zero(nn.Dropout1d(p=0.5, inplace=True), input)


def test_Dropout2d():
    b = random.randint(1, 5)
    w = random.randint(1, 5)
    h = random.randint(1, 5)
    num_features = 1000
    input = torch.empty(num_features, b, w, h)
    _test_dropout(nn.Dropout2d, device, input)
    _test_dropout(nn.Dropout2d, device, input, memory_format=torch.channels_last)

    _test_dropout_discontiguous(nn.Dropout2d, device)
    _test_dropout_discontiguous(nn.Dropout2d, device, memory_format=torch.channels_last)

    with pytest.warns(UserWarning, match="Received a 5-D input to dropout2d"):
        nn.Dropout2d(p=0.5)(torch.rand(1, 2, 2, 2, 2, device=device))

    with pytest.warns(UserWarning, match="Received a 2-D input to dropout2d"):
        nn.Dropout2d(p=0.5)(torch.rand(1, 2, device=device))

    with pytest.warns(UserWarning, match="assuming that channel-wise 1D dropout behavior is "
                                         "desired"):
        nn.Dropout2d(p=0.5)(torch.rand(1, 2, 2, device=device))

    # check that complete channels are dropped
    input = torch.ones(10, 4, 2, 2, device=device)
    _test_dropoutNd_channel_zero(nn.Dropout2d(p=0.5), input)
    _test_dropoutNd_channel_zero(nn.Dropout2d(p=0.5, inplace=True), input)


def test_Dropout3d():
    b = random.randint(1, 5)
    w = random.randint(1, 5)
    h = random.randint(1, 5)
    d = random.randint(1, 2)
    num_features = 1000
    input = torch.empty(num_features, b, d, w, h)
    _test_dropout(nn.Dropout3d, device, input)

    _test_dropout_discontiguous(nn.Dropout3d, device)
    _test_dropout_discontiguous(nn.Dropout3d, device, memory_format=torch.channels_last)

    with pytest.warns(UserWarning, match="Received a 6-D input to dropout3d"):
        nn.Dropout3d(p=0.5)(torch.rand(1, 2, 2, 2, 2, 2, device=device))

    with pytest.warns(UserWarning, match="Received a 3-D input to dropout3d"):
        nn.Dropout3d(p=0.5)(torch.rand(1, 2, 2, device=device))

    # no batch dims
    input = torch.rand(50, 2, 2, 2, device=device)
    _test_dropoutNd_no_batch(nn.Dropout3d(p=0.5), input)
    _test_dropoutNd_no_batch(nn.Dropout3d(p=0.5, inplace=True), input)

    # check that complete channels are dropped
    input = torch.ones(10, 4, 2, 2, 2, device=device)
    _test_dropoutNd_channel_zero(nn.Dropout3d(p=0.5), input)
    _test_dropoutNd_channel_zero(nn.Dropout3d(p=0.5, inplace=True), input)


def test_empty_dropout():
    x = torch.tensor([]).to(device)
    out = F.dropout(x)
    assert_equal(out.size(), x.size())
