import numpy as np
import pytest
import torch

import medfuse
from medfuse.image.colour import rgb_to_ycbcr
from medfuse.image.composition import fused_dtype


def colour_image(grey: np.ndarray) -> np.ndarray:
    """A pseudo-colour (PET-like) RGB image from a grey one."""
    g = grey.astype(np.float64) / 255
    rgb = np.stack([g, g**2, 0.5 * (1 - g) * g], axis=-1)
    return np.round(rgb * 255).astype(np.uint8)


def test_grey_pair_gives_grey_uint8(phantom, tiny_model):
    other = np.ascontiguousarray(phantom.T)
    fused = medfuse.fuse(phantom, other, model=tiny_model)
    assert fused.shape == phantom.shape and fused.dtype == np.uint8


def test_fuse_is_decoder_of_rule_of_encoders(phantom, tiny_model):
    other = np.ascontiguousarray(phantom[::-1])
    a = torch.from_numpy(phantom / 255.0).float()[None, None]
    b = torch.from_numpy(other / 255.0).float()[None, None]
    expected = tiny_model.decode((tiny_model.encode(a) + tiny_model.encode(b)) / 2)[0, 0]
    expected = np.round(np.clip(expected.numpy(), 0, 1) * 255)
    fused = medfuse.fuse(phantom, other, rule="average", model=tiny_model)
    assert np.abs(fused.astype(float) - expected).max() <= 1


def test_sfnn_map_blends_the_sources_with_its_weights(phantom, tiny_model):
    other = np.ascontiguousarray(phantom[::-1])
    a = torch.from_numpy(phantom / 255.0).float()[None, None]
    b = torch.from_numpy(other / 255.0).float()[None, None]
    w_a = medfuse.get_rule("sfnn-map").weights(tiny_model.encode(a), tiny_model.encode(b))
    expected = np.round(((w_a * a + (1 - w_a) * b)[0, 0]).detach().numpy() * 255)
    fused = medfuse.fuse(phantom, other, rule="sfnn-map", model=tiny_model)
    assert np.abs(fused.astype(float) - expected).max() <= 1
    assert np.all(fused >= np.minimum(phantom, other)) and np.all(fused <= np.maximum(phantom, other))
    assert 0.05 < w_a.mean() < 0.95 and w_a.std() > 0.01  # a real per-pixel mixture, not one source


def test_sfnn_map_of_one_image_twice_is_that_image(phantom, tiny_model):
    np.testing.assert_array_equal(medfuse.fuse(phantom, phantom, rule="sfnn-map", model=tiny_model), phantom)


@pytest.mark.parametrize("rule", medfuse.list_rules())
def test_every_rule_runs_on_odd_sizes(rule, tiny_model):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (23, 37), dtype=np.uint8)
    b = rng.integers(0, 256, (23, 37), dtype=np.uint8)
    assert medfuse.fuse(a, b, rule=rule, model=tiny_model).shape == (23, 37)


def test_colour_output_keeps_functional_chroma(phantom, tiny_model):
    pet = colour_image(np.ascontiguousarray(phantom.T))
    fused = medfuse.fuse(phantom, pet, model=tiny_model)
    assert fused.shape == pet.shape and fused.dtype == np.uint8
    unclipped = np.all((fused > 0) & (fused < 255), axis=-1)
    assert unclipped.mean() > 0.3
    chroma_fused = rgb_to_ycbcr(fused / 255.0)[..., 1:][unclipped]
    chroma_pet = rgb_to_ycbcr(pet / 255.0)[..., 1:][unclipped]
    assert np.abs(chroma_fused - chroma_pet).max() <= 1 / 255


def test_grey_stored_as_rgb_is_grey(phantom, tiny_model):
    other = np.ascontiguousarray(phantom.T)
    as_rgb = np.stack([other] * 3, axis=-1)
    grey_result = medfuse.fuse(phantom, other, model=tiny_model)
    rgb_result = medfuse.fuse(phantom, as_rgb, model=tiny_model)
    assert rgb_result.shape == as_rgb.shape
    for channel in range(3):
        np.testing.assert_array_equal(rgb_result[..., channel], grey_result)


def test_dtypes_round_trip(phantom, tiny_model):
    sixteen = phantom.astype(np.uint16) * 257
    result16 = medfuse.fuse(sixteen, sixteen, model=tiny_model)
    assert result16.dtype == np.uint16
    result8 = medfuse.fuse(phantom, phantom, model=tiny_model)
    assert np.abs(result16 / 65535.0 - result8 / 255.0).max() < 1.5 / 255
    result_float = medfuse.fuse(phantom / 255.0, phantom, model=tiny_model)
    assert result_float.dtype == np.float64 and 0 <= result_float.min() <= result_float.max() <= 1


def test_fused_dtype():
    assert fused_dtype(np.uint8, np.uint16) == np.uint16
    assert fused_dtype(np.uint8, np.float32) == np.float32
    assert fused_dtype(np.uint8, np.uint8) == np.uint8


def test_bad_inputs(phantom, tiny_model):
    with pytest.raises(ValueError, match="differ in size"):
        medfuse.fuse(phantom, phantom[:-1], model=tiny_model)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        medfuse.fuse(phantom * 2.0, phantom, model=tiny_model)
    with pytest.raises(ValueError, match="unknown fusion rule"):
        medfuse.fuse(phantom, phantom, rule="median", model=tiny_model)
    with pytest.raises(ValueError, match="grey"):
        medfuse.fuse(phantom[..., None].repeat(4, -1), phantom, model=tiny_model)
    with pytest.raises(ValueError, match="NaN"):
        medfuse.fuse(np.full((8, 8), np.nan), np.zeros((8, 8)), model=tiny_model)


def test_two_colour_inputs_take_the_more_saturated_chroma():
    from medfuse.image.composition import fused_chroma

    grey = np.full((2, 2, 3), 128, np.uint8)
    red, blue = grey.copy(), grey.copy()
    red[0, 0] = (255, 0, 0)
    blue[0, 0] = (150, 128, 128)  # barely coloured
    blue[1, 1] = (0, 0, 255)
    chroma = fused_chroma(red, blue)
    np.testing.assert_allclose(chroma[0, 0], rgb_to_ycbcr(red[0, 0] / 255.0)[1:])
    np.testing.assert_allclose(chroma[1, 1], rgb_to_ycbcr(blue[1, 1] / 255.0)[1:])
    assert fused_chroma(grey, grey) is None


def test_fuse_pairs_equals_fusing_one_by_one_in_order(phantom, tiny_model):
    small = phantom[:40, :48]
    pairs = [
        ("a", phantom, phantom.T.copy()),
        ("b", phantom[::-1].copy(), phantom),
        ("c", small, small[::-1].copy()),
        ("d", colour_image(phantom), phantom),
        ("e", phantom.T.copy(), phantom),
    ]
    fused = list(medfuse.fusion.engine.fuse_pairs(iter(pairs), "sfnn-map", tiny_model, batch_size=2))
    assert [key for key, _ in fused] == ["a", "b", "c", "d", "e"]
    for (_, image_a, image_b), (_, result) in zip(pairs, fused):
        np.testing.assert_array_equal(result, medfuse.fuse(image_a, image_b, "sfnn-map", tiny_model))


def test_fuse_pairs_reads_pairs_only_as_batches_need_them(phantom, tiny_model):
    taken = []

    def pairs():
        for index in range(5):
            taken.append(index)
            yield index, phantom, phantom.T.copy()

    fused = medfuse.fusion.engine.fuse_pairs(pairs(), "average", tiny_model, batch_size=2)
    next(fused)
    assert taken == [0, 1]


def test_memory_needed_grows_with_pixels_and_batch():
    from medfuse.fusion.memory import BYTES_PER_PIXEL, FUSION_OVERHEAD, fusion_memory

    assert fusion_memory(256, 256) == BYTES_PER_PIXEL * 65536 + FUSION_OVERHEAD
    assert fusion_memory(512, 256, 3) - FUSION_OVERHEAD == 6 * (fusion_memory(256, 256) - FUSION_OVERHEAD)


def test_too_large_a_pair_is_refused_before_any_work(monkeypatch, phantom, tiny_model):
    from medfuse.fusion import memory

    monkeypatch.setattr(memory, "free_memory", lambda device: 10 * 2**20)
    monkeypatch.setattr(tiny_model, "encode", lambda image: pytest.fail("the network ran"))
    with pytest.raises(
        memory.NotEnoughMemoryError,
        match=r"64 x 64 pixels needs about 144 MB on cpu.*10 MB is free, of which medfuse plans to "
        r"use 80%",
    ):
        medfuse.fuse(phantom, phantom, model=tiny_model)


def test_batch_size_follows_the_device_and_its_free_memory(monkeypatch):
    from medfuse.fusion import memory

    monkeypatch.setattr(memory, "free_memory", lambda device: 40 * 2**30)
    assert memory.default_batch_size("cpu", 256, 256) == memory.CPU_BATCH_SIZE == 1
    assert memory.default_batch_size("cuda:0", 256, 256) == memory.MAX_CUDA_BATCH_SIZE
    per_pair = memory.BYTES_PER_PIXEL * 2048 * 2048
    fitting = (int(0.8 * 40 * 2**30) - memory.FUSION_OVERHEAD) // per_pair
    assert memory.default_batch_size("cuda:0", 2048, 2048) == fitting
    memory.check_memory(2048, 2048, memory.default_batch_size("cuda:0", 2048, 2048), "cuda:0")
    monkeypatch.setattr(memory, "free_memory", lambda device: 2**30)
    with pytest.raises(memory.NotEnoughMemoryError, match="4096 x 4096"):
        memory.default_batch_size("cuda:0", 4096, 4096)
    monkeypatch.setattr(memory, "free_memory", lambda device: None)
    assert memory.default_batch_size("cpu", 4096, 4096) == 1


def test_free_cpu_memory_is_known_on_linux():
    from medfuse.fusion.memory import free_memory

    free = free_memory("cpu")
    assert free is None or 0 < free < 2**50


def test_a_weights_file_replaced_under_its_path_is_loaded_again(tmp_path, phantom):
    from medfuse.dran.models import save_weights

    path = tmp_path / "weights.safetensors"
    other = np.ascontiguousarray(phantom.T)
    results = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        save_weights(medfuse.create_model("dran", width=8), path, "dran", {"width": 8})
        results.append(medfuse.fuse(phantom, other, rule="average", model=str(path)))
    torch.manual_seed(1)
    expected = medfuse.fuse(phantom, other, rule="average", model=medfuse.create_model("dran", width=8).eval())
    assert not np.array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[1], expected)


def test_the_default_keeps_a_lesion_of_either_source(samples):
    """A Gaussian lesion (standard deviation 5 px, 0.3 of full scale) planted in one source of a
    bundled CT-MRI pair (a 128 x 128 crop of the brain): the default rule keeps most of its
    contrast, whichever source has it, where sfnn-map-e4 (the previous default) lets the CT hide
    the MRI's."""
    from medfuse.evaluation.metrics.fidelity import gaussian_blob, lesion_retention
    from medfuse.image.scales import grey_unit
    from medfuse.io.images import load_image

    model = medfuse.load_model()
    crop = np.s_[50:178, 86:214]
    mri = grey_unit(load_image(samples / "CT-MRI" / "MRI" / "41010.png"))[crop]
    ct = grey_unit(load_image(samples / "CT-MRI" / "CT" / "41010.png"))[crop]
    profile = gaussian_blob(mri.shape, (60, 64), 5.0)
    mri_lesion, ct_lesion = np.clip(mri + 0.3 * profile, 0, 1), np.clip(ct - 0.3 * profile, 0, 1)

    def kept(rule, source, lesioned):
        clean = medfuse.fuse(mri, ct, rule=rule, model=model)
        pair = (lesioned, ct) if source is mri else (mri, lesioned)
        return lesion_retention(clean, medfuse.fuse(*pair, rule=rule, model=model), source, lesioned, profile)

    assert kept("sfnn-pyramid", mri, mri_lesion) >= 0.8
    assert kept("sfnn-pyramid", ct, ct_lesion) >= 0.7
    assert kept("sfnn-map-e4", mri, mri_lesion) < 0.3


@pytest.mark.parametrize(
    "failure",
    [
        MemoryError(),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. "
            "DefaultCPUAllocator: can't allocate memory: you "
            "tried to allocate 16777216 bytes."
        ),
    ],
)
def test_memory_that_runs_out_during_the_work_is_one_error_not_the_allocators(
    monkeypatch, phantom, tiny_model, failure
):
    from medfuse.fusion import memory

    def allocator_fails(image):
        raise failure

    monkeypatch.setattr(tiny_model, "encode", allocator_fails)
    with pytest.raises(memory.NotEnoughMemoryError, match="ran out of memory while fusing a pair of 64 x 64 pixels"):
        medfuse.fuse(phantom, phantom, rule="sfnn-pyramid", model=tiny_model)  # a rule that runs the network
    volume = np.zeros((8, 6, 3), dtype=np.float32)
    with pytest.raises(memory.NotEnoughMemoryError, match="ran out of memory while fusing 8 x 6 x 3 volumes"):
        medfuse.fuse_volumes(tiny_model, volume, volume, "average")


def test_other_runtime_errors_pass_through(monkeypatch, phantom, tiny_model):
    def broken(image):
        raise RuntimeError("a shape mismatch")

    monkeypatch.setattr(tiny_model, "encode", broken)
    with pytest.raises(RuntimeError, match="a shape mismatch"):
        medfuse.fuse(phantom, phantom, rule="sfnn-pyramid", model=tiny_model)


def test_a_volume_s_arrays_are_planned_with_its_slices(monkeypatch, tiny_model):
    from medfuse.fusion import memory

    monkeypatch.setattr(memory, "free_memory", lambda device: 200 * 2**20)  # 160 MB to plan with
    monkeypatch.setattr(tiny_model, "encode", lambda image: pytest.fail("the network ran"))
    volume = np.zeros((32, 32, 40000), dtype=np.float32)  # 41 M voxels: 8 B each is 312 MB of results
    with pytest.raises(memory.NotEnoughMemoryError, match="32 x 32 pixels and 312 MB for the volume's arrays needs"):
        medfuse.fuse_volumes(tiny_model, volume, volume, "average")
    small = np.zeros((32, 32, 4), dtype=np.float32)
    monkeypatch.setattr(tiny_model, "encode", lambda image: torch.zeros(len(image), 8, 32, 32))
    monkeypatch.setattr(tiny_model, "decode", lambda features: torch.zeros(len(features), 1, 32, 32))
    assert medfuse.fuse_volumes(tiny_model, small, small, "average").shape == small.shape
