"""``modules.processing``: a tiny generation loop with A1111's hook order and infotext rules."""

import modules
from modules import images, infotext_utils, scripts, shared


class StableDiffusionProcessing:
    def __init__(
        self,
        outputs,
        *,
        prompt="a photo",
        seed=1000,
        batch_size=1,
        n_iter=1,
        scripts_runner=None,
        outpath_samples="outputs/txt2img-images",
        do_not_save_samples=True,
    ):
        self.outputs = list(outputs)  # the images the "model" makes, in order
        self.prompt = prompt
        self.negative_prompt = ""
        self.seed = seed
        self.subseed = -1
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.scripts = scripts_runner
        self.script_args_by_script = {}
        self.outpath_samples = outpath_samples
        self.do_not_save_samples = do_not_save_samples
        self.extra_generation_params = {}
        self.comments = {}
        self.steps = 20
        self.sampler_name = "Euler a"
        self.cfg_scale = 7.0
        self.width = self.outputs[0].width if self.outputs else 512
        self.height = self.outputs[0].height if self.outputs else 512
        self.iteration = 0
        self.batch_index = 0
        self.is_api = False
        self.all_prompts = [prompt] * (batch_size * n_iter)
        self.all_negative_prompts = [""] * (batch_size * n_iter)
        self.all_seeds = [seed + i for i in range(batch_size * n_iter)]
        self.all_subseeds = [-1] * (batch_size * n_iter)

    def comment(self, text):
        self.comments[text] = 1

    def save_samples(self):
        return not self.do_not_save_samples


class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    pass


class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    def __init__(self, outputs, *, init_images=(), **kwargs):
        super().__init__(outputs, **kwargs)
        self.init_images = list(init_images)


class Processed:
    def __init__(self, p, images_list, seed=-1, info="", infotexts=None, index_of_first_image=0):
        self.images = images_list
        self.extra_generation_params = p.extra_generation_params
        self.infotexts = infotexts or [info] * len(images_list)
        self.info = self.infotexts[0] if self.infotexts else info
        self.index_of_first_image = index_of_first_image
        self.comments = "".join(f"{c}\n" for c in p.comments)
        self.seed = seed


def create_infotext(
    p,
    all_prompts,
    all_seeds,
    all_subseeds,
    comments=None,
    iteration=0,
    position_in_batch=0,
    use_main_prompt=False,
    index=None,
    all_negative_prompts=None,
):
    if use_main_prompt:
        index = 0
    elif index is None:
        index = position_in_batch + iteration * p.batch_size
    generation_params = {
        "Steps": p.steps,
        "Sampler": p.sampler_name,
        "CFG scale": p.cfg_scale,
        "Seed": all_seeds[index],
        "Size": f"{p.width}x{p.height}",
        **p.extra_generation_params,
    }
    for key, value in generation_params.items():
        if isinstance(value, list):
            generation_params[key] = value[index]
        elif callable(value):
            generation_params[key] = value(**locals())
    text = ", ".join(
        k if k == v else f"{k}: {infotext_utils.quote(v)}"
        for k, v in generation_params.items()
        if v is not None
    )
    return f"{all_prompts[index]}\n{text}".strip()


def process_images(p):
    if p.scripts is not None:
        p.scripts.process(p)
    output_images, infotexts = [], []
    outputs = iter(p.outputs)
    for n in range(p.n_iter):
        p.iteration = n
        p.prompts = p.all_prompts[n * p.batch_size : (n + 1) * p.batch_size]
        p.negative_prompts = p.all_negative_prompts[n * p.batch_size : (n + 1) * p.batch_size]
        p.seeds = p.all_seeds[n * p.batch_size : (n + 1) * p.batch_size]
        p.subseeds = p.all_subseeds[n * p.batch_size : (n + 1) * p.batch_size]
        if p.scripts is not None:
            p.scripts.process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)
        for i in range(p.batch_size):
            p.batch_index = i
            image = next(outputs).copy()
            if p.scripts is not None:
                if modules.FLAVOR == "forge":
                    pp = scripts.PostprocessImageArgs(image, i)
                else:
                    pp = scripts.PostprocessImageArgs(image)
                p.scripts.postprocess_image(p, pp)
                image = pp.image
            text = create_infotext(
                p, p.prompts, p.seeds, p.subseeds, index=i, all_negative_prompts=p.negative_prompts
            )
            if p.save_samples():
                images.save_image(
                    image,
                    p.outpath_samples,
                    "",
                    p.seeds[i],
                    p.prompts[i],
                    shared.opts.samples_format,
                    info=text,
                    p=p,
                )
            infotexts.append(text)
            image.info["parameters"] = text
            output_images.append(image)
    res = Processed(p, output_images, seed=p.all_seeds[0], infotexts=infotexts)
    if p.scripts is not None:
        p.scripts.postprocess(p, res)
    return res
