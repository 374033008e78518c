// A piece of a page from the API, with its loading and error states:
//   const budgets = loader(() => api('/api/v1/budgets'));
//   budgets.load(); ... {budgets.loading} {budgets.error} {budgets.data}
// Only the newest request's answer counts: a slow answer to an older
// range, filter or poll is dropped.

export function loader(fetcher) {
  const st = $state({ loading: true, error: null, data: null });
  let seq = 0;
  st.load = async () => {
    const my = ++seq;
    try {
      const data = await fetcher();
      if (my !== seq) return;
      st.data = data;
      st.error = null;
    } catch (e) {
      if (my !== seq) return;
      st.error = e;
    }
    st.loading = false;
  };
  return st;
}
