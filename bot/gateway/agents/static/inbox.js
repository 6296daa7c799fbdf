// The web inbox's keyboard shortcuts, canned replies and live announcements.
// Served as /inbox/static/inbox.js (no build, no CDN). Everything here is a shortcut to
// a link or a form that works without it: the canned buttons submit a GET form the
// server answers with the reply box filled; claim and resolve are plain form posts.
(() => {
  'use strict';
  const $ = (selector) => document.querySelector(selector);
  const typing = (el) => !!el && (el.isContentEditable ||
    ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName));

  function insert(text) {
    const box = $('#reply');
    if (!box) return;
    const start = box.selectionStart ?? box.value.length;
    const end = box.selectionEnd ?? start;
    const gap = start > 0 && !/\s$/.test(box.value.slice(0, start)) ? ' ' : '';
    box.setRangeText(gap + text, start, end, 'end');
    box.focus();
  }

  function submit(id) {
    const form = document.getElementById(id);
    if (form) form.requestSubmit();
  }

  function help() {
    const dialog = $('#shortcuts');
    if (dialog && !dialog.open) dialog.showModal();
  }

  // The row of the conversation on screen, marked again after each live refresh.
  const here = (location.pathname.match(/^\/inbox\/handoffs\/(\d+)/) || [])[1];
  function markCurrent() {
    if (!here) return;
    const row = document.querySelector(`#queue tr[data-handoff="${here}"]`);
    if (row) row.setAttribute('aria-current', 'true');
  }

  function move(step) {
    const links = [...document.querySelectorAll('#queue tr[data-handoff] a')];
    if (!links.length) return;
    let at = links.indexOf(document.activeElement);
    if (at < 0) at = links.findIndex((a) => a.closest('tr').getAttribute('aria-current'));
    const next = at < 0 ? (step > 0 ? 0 : links.length - 1)
      : Math.min(links.length - 1, Math.max(0, at + step));
    links[next].focus();
  }

  document.addEventListener('click', (event) => {
    const canned = event.target.closest('button[data-text]');
    if (canned && $('#reply')) {
      event.preventDefault();
      insert(canned.dataset.text);
    } else if (event.target.closest('.help-open')) {
      help();
    }
  });

  document.addEventListener('keydown', (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target) || ($('#shortcuts') || {}).open) return;
    const key = event.key;
    let done = true;
    if (key === 'r' && $('#reply')) $('#reply').focus();
    else if (key === 'c') submit('claim-form');
    else if (key === 'e') submit('resolve-form');
    else if (key === 'j') move(1);
    else if (key === 'k') move(-1);
    else if (key === '?') help();
    else if (/^[1-9]$/.test(key)) {
      const button = document.querySelector(`button[data-text][aria-keyshortcuts="${key}"]`);
      if (button) insert(button.dataset.text); else done = false;
    } else done = false;
    if (done) event.preventDefault();  // the key does not also land in the focused box
  });

  // After a live refresh (live.html): tell screen readers what is new.
  const count = (selector) => document.querySelectorAll(selector).length;
  let seen = { customer: count('#transcript .msg.in'), waiting: count('#queue tr.unread') };
  document.addEventListener('inbox:updated', () => {
    markCurrent();
    const now = { customer: count('#transcript .msg.in'), waiting: count('#queue tr.unread') };
    const said = $('#announce');
    if (said && now.customer > seen.customer) said.textContent = 'New message from the customer.';
    else if (said && now.waiting > seen.waiting) said.textContent = 'New customer message in the queue.';
    seen = now;
  });

  document.addEventListener('DOMContentLoaded', () => {
    for (const button of document.querySelectorAll('.help-open')) button.hidden = false;
    markCurrent();
    if (location.search.includes('canned=') && $('#reply')) $('#reply').focus();
  });
})();
