"""The /enhancer/v1/ routes: schemas on pydantic 2 and its v1 compatibility layer, handlers, errors."""

from __future__ import annotations

import base64
import importlib.util
import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import synthetic_photo
from PIL import Image

from lib_enhancer.api import Result, apply
from lib_enhancer.recipe import Recipe
from lib_enhancer.webui import engine, routes
from lib_enhancer.webui.host import StandaloneHost

pydantic = pytest.importorskip("pydantic")

_spec = importlib.util.spec_from_file_location(
    "nie_webui_harness", Path(__file__).parent / "webui_stub" / "harness.py"
)
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)


def _pydantic_modules() -> list:
    mods = [pydantic]
    if not str(pydantic.VERSION).startswith("1"):
        import pydantic.v1 as v1  # the pydantic-1 code path (A1111 runs pydantic 1.10)

        mods.append(v1)
    return mods


PYDANTICS = _pydantic_modules()
IDS = [m.VERSION for m in PYDANTICS]


def b64_png(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode(text: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(text)))


@pytest.fixture
def image() -> Image.Image:
    return Image.fromarray(synthetic_photo(40, 56, 3))


@pytest.fixture
def fast(monkeypatch):
    seen = []

    def fake_gradient(image, scorer, options_, device, on_step):
        seen.append(options_)
        recipe = Recipe({"exposure": 0.3}, {"scorer": options_.scorer}).with_strength(options_.strength)
        return Result(apply(recipe, image), recipe, 1.0, 2.0, [], False, "fake")

    monkeypatch.setattr(engine, "_enhance", fake_gradient)
    monkeypatch.setattr(engine, "get_scorer", lambda spec, text, host, device: SimpleNamespace(spec=spec))
    return seen


class FakeApp:
    """Records ``add_api_route`` like FastAPI's app."""

    def __init__(self) -> None:
        self.routes: dict[str, SimpleNamespace] = {}

    def add_api_route(self, path, endpoint, *, methods, response_model=None, tags=None):
        self.routes[path] = SimpleNamespace(endpoint=endpoint, methods=methods, response_model=response_model)


@pytest.fixture
def api():
    """Routes registered on a fake app with the HTTPException of FastAPI (or the test fallback)."""
    with harness.webui_env(load_script=False):
        from fastapi import HTTPException

        yield SimpleNamespace(HTTPException=HTTPException)


@pytest.mark.parametrize("pd", PYDANTICS, ids=IDS)
def test_schemas_validate_and_refuse_unknown_keys(pd):
    s = routes.make_schemas(pd)
    req = s.EnhanceRequest(image="abc", steps=3, lock={"exposure": 0.1})
    assert (req.steps, req.scorer, req.mode, req.lock, req.format, req.return_image) == (
        3,
        None,
        None,
        {"exposure": 0.1},
        "png",
        True,
    )
    for bad in ({"image": "a", "bogus": 1}, {"image": "a", "strength": 1.5}, {"image": "a", "steps": -1}, {}):
        with pytest.raises(pd.ValidationError):
            s.EnhanceRequest(**bad)
    assert s.ApplyRequest(image="x", recipe="{}").recipe == "{}"
    assert s.ApplyRequest(image="x", recipe={"params": {}}).recipe == {"params": {}}
    assert s.ScoreRequest(image="x").text == ""


@pytest.mark.parametrize("pd", PYDANTICS, ids=IDS)
def test_routes_answer_with_their_response_models(pd, api, image, fast, tmp_path):
    app = FakeApp()
    host = StandaloneHost()
    s = routes.register(app, host, pydantic=pd)
    assert sorted(app.routes) == sorted(
        f"/enhancer/v1/{n}" for n in ("version", "scorers", "filters", "score", "enhance", "apply")
    )

    def call(name, *args):
        route = app.routes[f"/enhancer/v1/{name}"]
        out = route.endpoint(*args)
        model = route.response_model
        items = out if isinstance(out, list) else [out]
        inner = getattr(model, "__args__", (model,))[0]
        for item in items:
            inner(**item)  # validates against the declared response model
        return out

    version = call("version")
    assert version["api"] == "v1" and "gradient" in version["modes"]
    scorers = {x["name"]: x for x in call("scorers")}
    assert scorers["nima"]["non_commercial"] is True and scorers["natural"]["non_commercial"] is False
    assert [f["name"] for f in call("filters")][:4] == ["auto_contrast", "auto_levels", "equalize", "dehaze"]

    enhanced = call(
        "enhance", s.EnhanceRequest(image="data:image/png;base64," + b64_png(image), strength=0.5, seed=4)
    )
    assert fast[-1].strength == 0.5 and fast[-1].seed == 4
    recipe = Recipe.from_dict(enhanced["recipe"])
    assert np.array_equal(
        np.asarray(decode(enhanced["image"]).convert("RGB")), np.asarray(apply(recipe, image))
    )
    assert call("enhance", s.EnhanceRequest(image=b64_png(image), return_image=False))["image"] is None
    assert fast[-1].prior is None  # the scorer's own
    call("enhance", s.EnhanceRequest(image=b64_png(image), prior={}, return_image=False))
    assert fast[-1].prior == {} and fast[-1].verify is True
    call("enhance", s.EnhanceRequest(image=b64_png(image), mode="predict", verify=False, return_image=False))
    assert fast[-1].verify is False

    applied = call("apply", s.ApplyRequest(image=b64_png(image), recipe=recipe.to_json(), strength=1.0))
    assert np.array_equal(np.asarray(decode(applied["image"])), np.asarray(apply(recipe, image)))
    jpeg = call("apply", s.ApplyRequest(image=b64_png(image), recipe=enhanced["recipe"], format="jpeg"))
    assert decode(jpeg["image"]).format == "JPEG"


def test_score_route_with_the_builtin_scorer(api, image):
    app = FakeApp()
    s = routes.register(app, StandaloneHost(), pydantic=pydantic)
    out = app.routes["/enhancer/v1/score"].endpoint(s.ScoreRequest(image=b64_png(image)))
    from lib_enhancer.api import score

    assert out["scorer"] == "natural" and out["score"] == pytest.approx(score(image, "natural"), abs=1e-5)


@pytest.mark.parametrize(
    ("route", "body", "fragment"),
    [
        ("enhance", {"image": "!!!notbase64", "format": "png"}, "not valid base64"),
        ("enhance", {"image": "aGVsbG8gd29ybGQh", "format": "png"}, "cannot be decoded"),
        ("enhance", {"image": "", "format": "png"}, "empty"),
        ("enhance", {"image": "IMG", "scorer": "no-such-scorer"}, "unknown scorer"),
        ("enhance", {"image": "IMG", "mode": "annealing"}, "unknown enhancer mode"),
        ("enhance", {"image": "IMG", "format": "bmp"}, "unknown image format"),
        ("apply", {"image": "IMG", "recipe": "{not json"}, "not valid JSON"),
        ("apply", {"image": "IMG", "recipe": {"params": {"exposure": 9}}}, "outside its range"),
        ("score", {"image": "IMG", "scorer": "nope"}, "unknown scorer"),
    ],
)
def test_errors_become_http_answers(api, image, route, body, fragment):
    app = FakeApp()
    s = routes.register(app, StandaloneHost(), pydantic=pydantic)
    model = {"enhance": s.EnhanceRequest, "apply": s.ApplyRequest, "score": s.ScoreRequest}[route]
    body = {k: (b64_png(image) if v == "IMG" else v) for k, v in body.items()}
    with pytest.raises(api.HTTPException) as info:
        app.routes[f"/enhancer/v1/{route}"].endpoint(model(**body))
    assert info.value.status_code == 400 and fragment in info.value.detail


def test_unexpected_failure_is_a_500_with_the_prefix(api, image, monkeypatch, caplog):
    app = FakeApp()
    s = routes.register(app, StandaloneHost(), pydantic=pydantic)
    monkeypatch.setattr(engine, "run", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("gpu fell off")))
    with pytest.raises(api.HTTPException) as info:
        app.routes["/enhancer/v1/enhance"].endpoint(s.EnhanceRequest(image=b64_png(image)))
    assert info.value.status_code == 500 and info.value.detail.startswith("[Enhancer]")
    assert any("gpu fell off" in m for m in caplog.messages)


@pytest.mark.skipif(
    importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("httpx") is None,
    reason="FastAPI's TestClient is not installed",
)
def test_routes_through_fastapi(image, fast):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    app = FastAPI()
    routes.register(app, StandaloneHost())
    client = TestClient(app)
    assert client.get("/enhancer/v1/version").json()["api"] == "v1"
    r = client.post("/enhancer/v1/enhance", json={"image": b64_png(image), "strength": 0.5})
    assert r.status_code == 200, r.text
    assert r.json()["recipe"]["info"]["strength"] == 0.5
    assert client.post("/enhancer/v1/enhance", json={"image": b64_png(image), "nope": 1}).status_code == 422
    assert client.post("/enhancer/v1/enhance", json={"image": "@@"}).status_code == 400


def test_engine_passes_the_prior_to_the_library(image):
    flat = Image.fromarray((np.asarray(image) * 0.5 + 60).astype(np.uint8))  # no blacks, no whites
    default = engine._enhance(flat, "natural", engine.RunOptions(steps=4), "cpu", lambda step: False)
    neutral = engine._enhance(
        flat, "natural", engine.RunOptions(steps=4, prior={}), "cpu", lambda step: False
    )
    assert default.recipe.params.get("auto_contrast") == 1.0 and "auto_contrast" not in neutral.recipe.params
