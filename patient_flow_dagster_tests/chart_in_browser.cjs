// Opens an asset page in headless Chromium, opens the Markdown of one metadata entry and prints
// the chart image it shows (alt text, natural and shown size) as JSON; screenshot to a file.
// usage: node chart_in_browser.cjs CHROMIUM URL ENTRY SCREENSHOT
const puppeteer = require("puppeteer-core");

const SHOW = "Show Markdown";

(async () => {
  const [chromium, url, entry, screenshot] = process.argv.slice(2);
  const browser = await puppeteer.launch({
    executablePath: chromium, headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1400,1000"],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 1000 });
    await page.goto(url, { waitUntil: "networkidle0", timeout: 60000 });
    const rowButton = (name, label) => {
      const row = [...document.querySelectorAll("tr")].find(
        (tr) => tr.textContent.includes(name) && tr.textContent.includes(label));
      return row && [...row.querySelectorAll("a, button")].find((a) => a.textContent.includes(label));
    };
    await page.waitForFunction(rowButton, { timeout: 60000 }, entry, SHOW);
    // A first visit may greet with a newsletter prompt over the page: skip it.
    await page.evaluate(() => [...document.querySelectorAll("button")]
      .find((b) => b.textContent.trim() === "Skip")?.click());
    await page.evaluate((name, label, find) => eval(find)(name, label).click(), entry, SHOW,
                        rowButton.toString());
    const image = await page.waitForSelector('img[src^="data:image/png;base64,"]',
                                             { timeout: 30000 });
    await page.waitForFunction((img) => img.complete && img.naturalWidth > 0,
                               { timeout: 30000 }, image);
    const shown = await image.evaluate((img) => ({
      alt: img.alt, width: img.naturalWidth, height: img.naturalHeight,
      shownWidth: Math.round(img.getBoundingClientRect().width),
    }));
    await page.screenshot({ path: screenshot });
    console.log(JSON.stringify(shown));
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(String(error));
  process.exit(1);
});
