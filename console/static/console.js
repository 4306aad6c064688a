// Small behaviours without inline scripts (the Content-Security-Policy allows only 'self').
document.addEventListener("change", function (event) {
  var el = event.target;
  if (el && el.matches && el.matches("select[data-autosubmit]") && el.form) el.form.submit();
});
