// The technician's phone view (/console/tasks): each button posts the task's action to
// POST /api/v1/work-orders/{id}/actions with the order's expected_version, then fetches the
// task's card again as server-rendered HTML (GET /console/tasks/card?id=; 204: no longer mine).
// Reject and hold ask for a reason; submit asks for the result and photos: the photos (taken
// with the camera or chosen) go to POST /api/v1/photos first, and the hashes it answers are
// sent with the submit. The page follows the live stream: a work-order event of an order
// assigned to me, or on the page, fetches its card again. What the API refuses (a photo too large or not an image, a state that
// moved on) is shown in the user's language with the API's own detail.
(() => {
  "use strict";
  const config = JSON.parse(document.getElementById("tasks-config").textContent);
  const texts = JSON.parse(document.getElementById("tasks-texts").textContent);
  const list = document.getElementById("tasks");
  const toastBox = document.getElementById("toast");
  const state = { done: [], photos: [], card: null, action: null, toastTimer: null };
  window.stewardTasks = state;

  const text = (key, values = {}) =>
    Object.entries(values).reduce(
      (shown, [name, value]) => shown.replace(`{${name}}`, String(value)),
      texts[`tasks.js.${key}`] || key,
    );
  const headers = (extra = {}) => ({ [config.csrfHeader]: config.csrf, ...extra });

  function fromHtml(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function toast(message, failed = false) {
    toastBox.textContent = message;
    toastBox.classList.toggle("toast-error", failed);
    toastBox.setAttribute("role", failed ? "alert" : "status");
    toastBox.hidden = false;
    clearTimeout(state.toastTimer);
    state.toastTimer = setTimeout(() => { toastBox.hidden = true; }, failed ? 8000 : 4000);
  }

  function updateCount() {
    const cards = list.querySelectorAll(".task");
    const open = Array.from(cards).filter((card) => card.dataset.open === "1").length;
    document.getElementById("open-count").textContent = String(open);
    document.getElementById("empty").hidden = cards.length > 0;
  }

  function signIn() {
    window.location.assign("/console/login?next=/console/tasks");
  }

  async function refresh(id) {
    const response = await fetch(`${config.card}?id=${encodeURIComponent(id)}`, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    });
    if (response.status === 401) return signIn();
    const card = document.getElementById(`task-${id}`);
    if (response.status === 204) {
      if (card) card.remove();
    } else if (response.ok) {
      const fresh = fromHtml(await response.text());
      if (card) card.replaceWith(fresh);
      else list.prepend(fresh);
    }
    return updateCount();
  }

  // What the API refused, in the user's language, with the API's own detail.
  async function refusal(response, photos = false) {
    if (response.status === 401) signIn();
    let detail = "";
    try {
      const body = await response.json();
      if (typeof body.detail === "string") detail = body.detail;
    } catch (error) {
      detail = "";
    }
    const mb = Math.round(config.photoMaxBytes / 1048576);
    const byStatus = {
      403: "error.forbidden",
      409: "error.conflict",
      412: "error.conflict",
      413: photos ? "error.too_large" : "error.failed",
      415: photos ? "error.not_image" : "error.failed",
      422: photos ? "error.bad_photo" : "error.invalid",
    };
    const message = text(byStatus[response.status] || "error.failed", { mb, n: config.photoMaxFiles });
    return detail ? `${message}（${detail}）` : message;
  }

  async function act(card, action, fields = {}) {
    const id = card.dataset.id;
    const body = { action, expected_version: Number(card.dataset.version), ...fields };
    let response;
    try {
      response = await fetch(`${config.api}/work-orders/${encodeURIComponent(id)}/actions`, {
        method: "POST",
        credentials: "same-origin",
        headers: headers({ "Content-Type": "application/json", Accept: "application/json" }),
        body: JSON.stringify(body),
      });
    } catch (error) {
      return text("error.network");
    }
    if (response.ok) {
      const order = await response.json();
      state.done.push({ id: Number(id), action, state: order.state });
      await refresh(id);
      toast(text(`done.${action}`, { number: card.dataset.number }));
      return null;
    }
    const message = await refusal(response);
    if (response.status === 409 || response.status === 412) await refresh(id);
    return message;
  }

  async function upload(files) {
    const form = new FormData();
    for (const file of files) form.append("file", file, file.name || "photo");
    let response;
    try {
      response = await fetch(`${config.api}/photos`, {
        method: "POST",
        credentials: "same-origin",
        headers: headers({ Accept: "application/json" }),
        body: form,
      });
    } catch (error) {
      throw new Error(text("error.network"));
    }
    if (!response.ok) throw new Error(await refusal(response, true));
    const stored = await response.json();
    return stored.photos.map((photo) => photo.sha256);
  }

  function busy(form, on) {
    for (const button of form.querySelectorAll("button")) button.disabled = on;
  }

  function what(card) {
    return `${card.dataset.number} · ${card.querySelector(".card-title").textContent}`;
  }

  // --- the buttons of a card ------------------------------------------------------------------

  list.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const card = button.closest(".task");
    const action = button.dataset.action;
    if (action === "submit") {
      openSubmit(card);
      return;
    }
    if (button.dataset.reason) {
      openReason(card, action, button.textContent);
      return;
    }
    for (const other of card.querySelectorAll("button")) other.disabled = true;
    const error = await act(card, action);
    if (error) {
      for (const other of card.querySelectorAll("button")) other.disabled = false;
      toast(error, true);
    }
  });

  for (const close of document.querySelectorAll("dialog [data-close]")) {
    close.addEventListener("click", () => close.closest("dialog").close());
  }

  // --- reject and hold: a reason --------------------------------------------------------------

  const reasonDialog = document.getElementById("reason-dialog");
  const reasonForm = document.getElementById("reason-form");
  const reasonText = document.getElementById("reason-text");
  const reasonError = document.getElementById("reason-error");

  function openReason(card, action, label) {
    state.card = card;
    state.action = action;
    document.getElementById("reason-title").textContent = text(`title.${action}`);
    document.getElementById("reason-what").textContent = what(card);
    document.getElementById("reason-submit").textContent = label;
    reasonText.value = "";
    reasonError.hidden = true;
    reasonDialog.showModal();
    reasonText.focus();
  }

  reasonForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const reason = reasonText.value.trim();
    if (!reason) {
      reasonError.textContent = text("error.reason");
      reasonError.hidden = false;
      return;
    }
    busy(reasonForm, true);
    const error = await act(state.card, state.action, { reason });
    busy(reasonForm, false);
    if (error) {
      reasonError.textContent = error;
      reasonError.hidden = false;
    } else {
      reasonDialog.close();
    }
  });

  // --- submit: the result and photos ----------------------------------------------------------

  const submitDialog = document.getElementById("submit-dialog");
  const submitForm = document.getElementById("submit-form");
  const resultText = document.getElementById("result-text");
  const submitError = document.getElementById("submit-error");
  const photoInput = document.getElementById("photo-input");
  const previews = document.getElementById("previews");
  const sendButton = document.getElementById("submit-send");

  function showPreviews() {
    previews.replaceChildren();
    state.photos.forEach((file, index) => {
      const item = document.createElement("li");
      const image = document.createElement("img");
      image.alt = file.name;
      const reader = new FileReader();
      reader.addEventListener("load", () => { image.src = String(reader.result); });
      if (file.type.startsWith("image/")) reader.readAsDataURL(file);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove";
      remove.textContent = "×";
      remove.setAttribute("aria-label", text("photo.remove", { name: file.name }));
      remove.addEventListener("click", () => {
        state.photos.splice(index, 1);
        showPreviews();
      });
      const name = document.createElement("span");
      name.className = "preview-name";
      name.textContent = file.name;
      item.append(image, name, remove);
      previews.append(item);
    });
  }

  function openSubmit(card) {
    state.card = card;
    state.photos = [];
    document.getElementById("submit-what").textContent = what(card);
    resultText.value = "";
    photoInput.value = "";
    submitError.hidden = true;
    sendButton.textContent = text("send");
    showPreviews();
    submitDialog.showModal();
    resultText.focus();
  }

  photoInput.addEventListener("change", () => {
    state.photos.push(...Array.from(photoInput.files));
    photoInput.value = "";
    submitError.hidden = true;
    showPreviews();
  });

  submitForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = resultText.value.trim();
    if (!result) {
      submitError.textContent = text("error.result");
      submitError.hidden = false;
      return;
    }
    submitError.hidden = true;
    busy(submitForm, true);
    let photos = [];
    try {
      if (state.photos.length > 0) {
        sendButton.textContent = text("uploading", { n: state.photos.length });
        photos = await upload(state.photos);
      }
      sendButton.textContent = text("sending");
      const error = await act(state.card, "submit", { result, photos });
      if (error) throw new Error(error);
      submitDialog.close();
    } catch (error) {
      submitError.textContent = error.message;
      submitError.hidden = false;
    } finally {
      sendButton.textContent = text("send");
      busy(submitForm, false);
    }
  });

  // --- live: tasks dispatched to me, or taken from me, without a reload ------------------------

  const pending = new Map();

  function schedule(id) {
    const running = pending.get(id);
    if (running) {
      running.again = true;
      return;
    }
    const entry = { again: false };
    pending.set(id, entry);
    (async () => {
      do {
        entry.again = false;
        try {
          await refresh(id);
        } catch (error) {
          entry.again = false; // the next event of this order fetches it again
        }
      } while (entry.again);
      pending.delete(id);
    })();
  }

  function follow() {
    if (!window.EventSource) return;
    const source = new EventSource(config.stream);
    state.stream = source;
    source.addEventListener("open", () => { document.body.dataset.stream = "live"; });
    source.addEventListener("error", () => { document.body.dataset.stream = "reconnecting"; });
    source.addEventListener("work_order", (event) => {
      const order = JSON.parse(event.data).data || {};
      const id = String(order.id);
      if (order.assignee === config.me || document.getElementById(`task-${id}`)) schedule(id);
    });
  }

  updateCount();
  follow();
})();
