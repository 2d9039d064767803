"""Messages shared by the raw-data datasets."""

WHERE_TO_PUT_HAM10000 = (
    "Download HAM10000 (Kaggle 'kmader/skin-cancer-mnist-ham10000', or Harvard Dataverse "
    "doi:10.7910/DVN/DBW86T) and put HAM10000_metadata.csv (Dataverse: "
    "HAM10000_metadata.tab) and the image folders "
    "(HAM10000_images_part_1/ and HAM10000_images_part_2/, or one flat folder) in "
    "data/01_raw/HAM10000/, or point at your copy with "
    "`kedro run --params raw_dir=/path/to/HAM10000`. "
    "To try the project without it, run `make demo` (generated demo data)."
)
