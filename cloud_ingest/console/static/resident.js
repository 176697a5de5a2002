// The resident's phone view (/console/requests): a repair request is its text, a category and
// an optional photo. The photo goes to POST /api/v1/photos first; the request is filed with
// POST /api/v1/requests (source: resident) naming the photo's hash. Rating a closed request is
// the rate action of POST /api/v1/work-orders/{id}/actions. After each change the list of my
// requests is fetched again as server-rendered HTML (GET /console/requests/list), and so it is
// when the live stream tells of a change to one of them (not while a rating is being typed). What the API
// refuses (a photo too large or not an image) is shown in the user's language with its detail.
(() => {
  "use strict";
  const config = JSON.parse(document.getElementById("resident-config").textContent);
  const texts = JSON.parse(document.getElementById("resident-texts").textContent);
  const list = document.getElementById("requests");
  const toastBox = document.getElementById("toast");
  const state = { filed: [], rated: [], photo: null, toastTimer: null };
  window.stewardResident = state;

  const text = (key, values = {}) =>
    Object.entries(values).reduce(
      (shown, [name, value]) => shown.replace(`{${name}}`, String(value)),
      texts[`resident.js.${key}`] || key,
    );
  const headers = (extra = {}) => ({ [config.csrfHeader]: config.csrf, ...extra });

  function toast(message) {
    toastBox.textContent = message;
    toastBox.hidden = false;
    clearTimeout(state.toastTimer);
    state.toastTimer = setTimeout(() => { toastBox.hidden = true; }, 4000);
  }

  function signIn() {
    window.location.assign("/console/login?next=/console/requests");
  }

  async function refresh() {
    const response = await fetch(config.list, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    });
    if (response.status === 401) return signIn();
    if (response.ok) list.innerHTML = await response.text();
    return null;
  }

  async function refusal(response, photos = false) {
    if (response.status === 401) signIn();
    let detail = "";
    try {
      const body = await response.json();
      if (typeof body.detail === "string") detail = body.detail;
    } catch (error) {
      detail = "";
    }
    const byStatus = {
      403: "error.forbidden",
      409: "error.conflict",
      412: "error.conflict",
      413: photos ? "error.too_large" : "error.failed",
      415: photos ? "error.not_image" : "error.failed",
      422: photos ? "error.bad_photo" : "error.invalid",
    };
    const mb = Math.round(config.photoMaxBytes / 1048576);
    const message = text(byStatus[response.status] || "error.failed", { mb });
    return detail ? `${message}（${detail}）` : message;
  }

  async function post(url, body, extraHeaders = {}) {
    try {
      return await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: headers({ Accept: "application/json", ...extraHeaders }),
        body,
      });
    } catch (error) {
      throw new Error(text("error.network"));
    }
  }

  // --- a new request --------------------------------------------------------------------------

  const form = document.getElementById("request-form");
  const textBox = document.getElementById("request-text");
  const photoInput = document.getElementById("request-photo");
  const previews = document.getElementById("request-previews");
  const error = document.getElementById("request-error");
  const send = document.getElementById("request-send");

  function showPhoto() {
    previews.replaceChildren();
    const file = state.photo;
    if (file === null) return;
    const item = document.createElement("li");
    const image = document.createElement("img");
    image.alt = file.name;
    const reader = new FileReader();
    reader.addEventListener("load", () => { image.src = String(reader.result); });
    if (file.type.startsWith("image/")) reader.readAsDataURL(file);
    const name = document.createElement("span");
    name.className = "preview-name";
    name.textContent = file.name;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.textContent = "×";
    remove.setAttribute("aria-label", text("photo.remove", { name: file.name }));
    remove.addEventListener("click", () => {
      state.photo = null;
      showPhoto();
    });
    item.append(image, name, remove);
    previews.append(item);
  }

  photoInput.addEventListener("change", () => {
    state.photo = photoInput.files.length > 0 ? photoInput.files[0] : null;
    photoInput.value = "";
    error.hidden = true;
    showPhoto();
  });

  async function upload(file) {
    const data = new FormData();
    data.append("file", file, file.name || "photo");
    const response = await post(`${config.api}/photos`, data);
    if (!response.ok) throw new Error(await refusal(response, true));
    const stored = await response.json();
    return stored.sha256;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const words = textBox.value.trim();
    if (!words) {
      error.textContent = text("error.text");
      error.hidden = false;
      textBox.focus();
      return;
    }
    const category = form.querySelector("input[name=category]:checked").value;
    error.hidden = true;
    send.disabled = true;
    try {
      const photos = [];
      if (state.photo !== null) {
        send.textContent = text("uploading");
        photos.push(await upload(state.photo));
      }
      send.textContent = text("sending");
      const body = JSON.stringify({ source: "resident", text: words, category, photos });
      const response = await post(`${config.api}/requests`, body, {
        "Content-Type": "application/json",
      });
      if (!response.ok) throw new Error(await refusal(response));
      const order = await response.json();
      state.filed.push(order.id);
      textBox.value = "";
      state.photo = null;
      showPhoto();
      await refresh();
      toast(text("filed", { number: order.number }));
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    } finally {
      send.textContent = text("send");
      send.disabled = false;
    }
  });

  // --- rating a closed request ----------------------------------------------------------------

  list.addEventListener("submit", async (event) => {
    const rateForm = event.target.closest("form[data-rate]");
    if (!rateForm) return;
    event.preventDefault();
    const card = rateForm.closest(".request");
    const failed = rateForm.querySelector(".form-error");
    const button = rateForm.querySelector("button[type=submit]");
    const rating = Number(rateForm.querySelector("input[name=rating]:checked").value);
    const comment = rateForm.querySelector("textarea").value.trim();
    const body = { action: "rate", rating, expected_version: Number(card.dataset.version) };
    if (comment) body.comment = comment;
    button.disabled = true;
    try {
      const response = await post(
        `${config.api}/work-orders/${encodeURIComponent(card.dataset.id)}/actions`,
        JSON.stringify(body),
        { "Content-Type": "application/json" },
      );
      if (!response.ok) {
        const message = await refusal(response);
        if (response.status === 409 || response.status === 412) await refresh();
        throw new Error(message);
      }
      state.rated.push({ id: Number(card.dataset.id), rating });
      await refresh();
      toast(text("rated"));
    } catch (failure) {
      failed.textContent = failure.message;
      failed.hidden = false;
      button.disabled = false;
    }
  });

  // --- live: the progress of my requests without a reload ------------------------------------

  let again = false;
  let running = false;

  async function refreshSoon() {
    if (running) {
      again = true;
      return;
    }
    running = true;
    do {
      again = false;
      const typing = list.querySelector("form[data-rate] textarea:focus");
      if (typing === null) await refresh().catch(() => {});
    } while (again);
    running = false;
  }

  if (window.EventSource) {
    const source = new EventSource(config.stream);
    state.stream = source;
    source.addEventListener("open", () => { document.body.dataset.stream = "live"; });
    source.addEventListener("error", () => { document.body.dataset.stream = "reconnecting"; });
    source.addEventListener("work_order", (event) => {
      const order = JSON.parse(event.data).data || {};
      if (document.getElementById(`request-${order.id}`)) refreshSoon();
    });
  }
})();
