// The nin page: choose, drop or pick a sample image; show the top 5 and the top class's map.
// Plain browser JavaScript, no libraries; every URL is relative so the page works under any path prefix.
"use strict";

const $ = (id) => document.getElementById(id);
const QUERY = "top=5&sort=true&class_map=true";
let previewUrl = null;

function setState(state, message) {
  document.body.dataset.state = state;
  if (message !== undefined) $("status").textContent = message;
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = { error: `HTTP ${response.status}` };
  }
  if (!response.ok) {
    const error = new Error((body && body.error) || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function showPreview(src) {
  const img = $("preview");
  img.onload = () => img.classList.toggle("pixelated", Math.max(img.naturalWidth, img.naturalHeight) < 96);
  img.src = src;
  img.hidden = false;
  $("drop-text").hidden = true;
}

function percent(p) {
  const v = 100 * p;
  return v >= 10 ? `${v.toFixed(1)}%` : v >= 0.1 ? `${v.toFixed(2)}%` : "<0.1%";
}

function render(body) {
  const rows = body.output[0].prediction;
  const bars = $("bars");
  bars.replaceChildren();
  for (const row of rows) {
    const li = document.createElement("li");
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = row.label;
    label.title = row.label;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = "0%";
    track.append(fill);
    const pct = document.createElement("span");
    pct.className = "pct";
    pct.textContent = percent(row.probability);
    li.append(label, track, pct);
    bars.append(li);
    requestAnimationFrame(() => { fill.style.width = `${Math.max(0.5, 100 * row.probability)}%`; });
  }
  const map = body.class_map;
  if (map) {
    $("map").src = map.image;
    $("map-caption").textContent =
      `Class map of “${map.label}”, the top class: the model's ${map.map_size[0]}×${map.map_size[1]} ` +
      "confidence map, upsampled and laid over the input it saw. Bright = evidence for the class.";
    $("map-figure").hidden = false;
  } else {
    $("map-figure").hidden = true;
  }
  const top = rows[0];
  const ms = Math.round(1000 * body.processing_time);
  setState("done", `Predicted “${top.label}” (${percent(top.probability)}) in ${ms} ms.`);
}

async function predict(url, options) {
  setState("busy", "Classifying…");
  try {
    render(await getJSON(url, options));
  } catch (err) {
    $("bars").replaceChildren();
    $("map-figure").hidden = true;
    setState("error", `Error: ${err.message}`);
  }
}

function predictFile(file) {
  if (!file) return;
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(file);
  showPreview(previewUrl);
  const form = new FormData();
  form.append("file", file, file.name);
  predict(`api/predict?${QUERY}`, { method: "POST", body: form });
}

function predictSample(name, url) {
  showPreview(url);
  predict(`api/predict_sample?filename=${encodeURIComponent(name)}&${QUERY}`);
}

async function loadSamples() {
  let urls = [];
  try {
    urls = await getJSON("api/get_samples");
  } catch (err) {
    return;
  }
  const box = $("samples");
  box.replaceChildren();
  for (const url of urls) {
    const name = decodeURIComponent(url.split("/").pop());
    const button = document.createElement("button");
    button.type = "button";
    button.title = name;
    button.dataset.sample = name;
    const img = document.createElement("img");
    img.src = `api/thumbnail/${encodeURIComponent(name)}`;
    img.alt = name;
    button.append(img);
    button.addEventListener("click", () => predictSample(name, `api/samples/${encodeURIComponent(name)}`));
    box.append(button);
  }
  $("samples-block").hidden = urls.length === 0;
}

async function loadModel() {
  for (;;) {
    try {
      const config = await getJSON("api/get_config");
      const nin = config.modelhub.nin;
      const acc = nin.metrics && typeof nin.metrics.accuracy === "number"
        ? ` · test accuracy ${(100 * nin.metrics.accuracy).toFixed(2)}%` : "";
      $("model-line").textContent =
        `${config.meta.name} · ${nin.classes.length} classes · input ${nin.input.channels}×` +
        `${nin.input.height}×${nin.input.width}${acc}`;
      document.title = `${config.meta.name} · nin`;
      return;
    } catch (err) {
      if (err.status !== 503) {
        $("model-line").textContent = `The model is unavailable: ${err.message}`;
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

function wireDrop() {
  const drop = $("drop");
  $("file").addEventListener("change", (event) => predictFile(event.target.files[0]));
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    predictFile(event.dataTransfer.files[0]);
  });
}

document.addEventListener("DOMContentLoaded", async () => {
  wireDrop();
  await loadModel();
  await loadSamples();
});
